"""Shared form pieces: the deferred progress bar."""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject

from deq_explorer._napari._widgets import ProgressBar


class _Paints(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def test_progress_bar_repaints_later_not_at_once(qtbot):
    bar = ProgressBar()
    qtbot.addWidget(bar)
    bar.setRange(0, 100)
    bar.show()
    qtbot.waitExposed(bar)
    paints = _Paints()
    bar.installEventFilter(paints)
    qtbot.wait(50)
    paints.count = 0
    bar.setValue(40)  # a plain QProgressBar repaints here, synchronously
    assert bar.value() == 40 and paints.count == 0
    qtbot.waitUntil(lambda: paints.count > 0, timeout=2000)  # with the next window update
    assert bar.updatesEnabled()


def test_tv_in_the_gui_gets_its_weight_from_the_noise(make_napari_viewer, qtbot):
    """The option field leaves out what a solve derives; the solve then derives it."""
    from deq_explorer._napari._widgets import SpecPicker
    from deq_explorer.registry import priors

    picker = SpecPicker("prior", priors, "tv")
    assert "weight" not in picker.params.value and "iters=50" in picker.params.value
    picker.params.value = "weight=0.1,iters=50"
    assert picker.spec == "tv:weight=0.1,iters=50"  # typed by the user: kept
    picker.choice.value = "identity"
    picker.choice.value = "tv"
    assert picker.spec == "tv:iters=50"


def _text_room(edit) -> int:
    """The width a line edit has for its text (its contents rectangle, less Qt's margins)."""
    from qtpy.QtWidgets import QStyle, QStyleOptionFrame

    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    rect = edit.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, edit)
    margins = edit.textMargins()
    return rect.width() - margins.left() - margins.right() - 4  # QLineEdit's 2 px a side


def test_option_fields_are_wide_enough_to_read(make_napari_viewer, qtbot):
    """``gamma=0.6,tau=0.5`` was cut to ``ıma=0.6,tau=0.5``; the tooltip holds the full text."""
    from deq_explorer._napari.reconstruct import ReconstructPanel

    viewer = make_napari_viewer()
    panel = ReconstructPanel(viewer)
    qtbot.addWidget(panel)
    panel.solver.set_spec("pnp-pgm:gamma=0.6,tau=0.5")
    panel.accel.set_spec("anderson:m=5,beta=1.0,lam=0.0001")
    panel.show()
    qtbot.waitExposed(panel)
    panel.resize(panel.minimumSizeHint())  # as narrow as the panel goes (a narrow dock)
    for picker in (panel.solver, panel.accel, panel.prior):
        edit, text = picker.params.native, picker.params.value
        assert text
        qtbot.wait(50)
        assert _text_room(edit) >= edit.fontMetrics().horizontalAdvance(text), text
        assert text in picker.params.tooltip
