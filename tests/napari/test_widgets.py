"""Shared form pieces: the deferred progress bar, the typed option widgets of a spec picker."""

from __future__ import annotations

from typing import Literal

import pytest
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
    """The weight field starts empty and stays out of the spec; the solve then derives it."""
    from deq_explorer._napari._widgets import SpecPicker
    from deq_explorer.registry import priors

    picker = SpecPicker("prior", priors, "tv")
    weight = picker.fields["weight"].widget
    assert weight.value == "" and weight.native.placeholderText() == "from problem"
    assert picker.spec == "tv:iters=50"
    weight.value = "0.1"
    assert picker.spec == "tv:weight=0.1,iters=50"  # typed by the user: kept
    weight.value = "auto"  # tuned from the data before the solve: not marked as an error
    assert picker.spec == "tv:weight=auto,iters=50" and picker.fields["weight"].problem() == ""
    assert "auto" in weight.tooltip and "SURE" in weight.tooltip
    weight.value = "strong"
    assert "not a float" in picker.fields["weight"].problem()
    weight.value = "0.1"
    picker.choice.value = "identity"
    assert picker.spec == "identity" and not picker.fields and not picker.option_box.visible
    picker.choice.value = "tv"
    assert picker.spec == "tv:iters=50"
    picker.set_spec("tv:weight=0.02")  # a spec reads back as it was written
    assert picker.spec == "tv:weight=0.02" and picker.fields["iters"].widget.value == 50
    picker.set_spec("tv")  # what a spec leaves out goes back to its default, or auto
    assert picker.spec == "tv" and picker.fields["weight"].widget.value == ""
    picker.fields["iters"].widget.value = 60  # an edit: listed from now on
    assert picker.spec == "tv:iters=60"


def _kinds(picker) -> dict[str, str]:
    return {key: type(f.widget).__name__ for key, f in picker.fields.items()}


def test_a_packs_bare_entry_gets_typed_widgets(make_napari_viewer, installed_pack):
    """No GUI code and no metadata: the widgets come from the factory's types and defaults."""
    from deq_explorer._napari._widgets import SpecPicker
    from deq_explorer.registry import operators

    def bare(shape, device=None, dtype=None, *, n: int = 3, x: float = 0.25, on=False, tag="a"):
        """A pack's operator."""

    installed_pack(lambda: operators.register("test-bare", bare))
    picker = SpecPicker("operator", operators, "mri")
    picker.refresh()
    picker.choice.value = "test-bare"
    assert _kinds(picker) == {"n": "SpinBox", "x": "LineEdit", "on": "CheckBox", "tag": "LineEdit"}
    assert picker.spec == "test-bare:n=3,x=0.25,on=false,tag=a"
    picker.set_spec("test-bare:x=1e-4,on=true")
    assert picker.fields["x"].widget.value == "0.0001" and picker.fields["on"].widget.value
    assert picker.spec == "test-bare:x=0.0001,on=true"
    assert operators.options_of(picker.spec)[1] == {"n": 3, "x": 1e-4, "on": True, "tag": "a"}


def test_options_that_may_be_left_out_get_an_unset_state(make_napari_viewer):
    """Derived or optional: a combo box's "auto" or "none", an empty field; auto stays out."""
    from deq_explorer._napari._widgets import SpecPicker
    from deq_explorer.registry import Registry

    def gadget(*, mode: Literal["a", "b"] | None = None, on=True, n: int | None = None, w=0.5):
        return mode, on, n, w

    reg = Registry("gadget")
    reg.register("g", gadget, metadata={"problem_defaults": lambda scale: {"on": 1, "w": 0}})
    picker = SpecPicker("gadget", reg, "g")
    assert _kinds(picker) == {
        "mode": "ComboBox",
        "on": "ComboBox",
        "n": "LineEdit",
        "w": "LineEdit",
    }
    assert picker.fields["mode"].widget.choices[0] is None
    assert str(picker.fields["on"].widget.choices[0]) == "AUTO"
    assert picker.fields["w"].widget.native.placeholderText() == "from problem"
    assert picker.fields["n"].widget.native.placeholderText() == "none"
    assert picker.spec == "g:mode=none"  # auto and empty fields are left out
    picker.set_spec("g:mode=b,on=false,n=4,w=0.3")
    assert picker.spec == "g:mode=b,on=false,n=4,w=0.3"
    assert reg.build(picker.spec) == ("b", False, 4, 0.3)
    picker.set_spec("g")
    assert picker.spec == "g" and reg.build(picker.spec) == (None, True, None, 0.5)


def test_builtin_widgets_follow_the_schema(make_napari_viewer):
    """Spin boxes in range, a float field that reads 1e-4, combos for choices, help as tooltips."""
    from deq_explorer._napari._widgets import SpecPicker
    from deq_explorer.registry import accelerators, operators

    mri = SpecPicker("operator", operators, "mri")
    assert _kinds(mri) == {"rate": "LineEdit", "pattern": "ComboBox", "seed": "SpinBox"}
    assert mri.fields["pattern"].widget.choices == ("radial", "cartesian")
    assert "fraction of k-space sampled" in mri.fields["rate"].widget.tooltip
    assert "(0, 1]" in mri.fields["rate"].widget.tooltip
    rate = mri.fields["rate"]
    rate.widget.value = "1e-1"
    assert rate.problem() == "" and "rate=1e-1" in mri.spec
    rate.widget.value = "2"  # out of range: shown red, still read, so the solve names it
    assert "outside (0, 1]" in rate.problem() and "outside" in rate.widget.tooltip
    assert "rate=2" in mri.spec and rate.widget.native.styleSheet()
    rate.widget.value = "fast"
    assert "not a float" in rate.problem()
    mri.set_spec("mri:pattern=cartesian,seed=4")
    assert mri.spec == "mri:pattern=cartesian,seed=4" and rate.problem() == ""
    bicubic = SpecPicker("operator", operators, "sr-bicubic")
    assert bicubic.fields["scale"].widget.choices == (2, 3, 4)
    anderson = SpecPicker("accelerator", accelerators, "anderson")
    m = anderson.fields["m"].widget
    assert (m.min, m.value) == (1, 5)
    assert _kinds(SpecPicker("accelerator", accelerators, "nesterov"))["restart"] == "CheckBox"


def test_every_builtin_spec_round_trips_through_its_picker(make_napari_viewer):
    """set_spec → spec keeps the meaning of every entry's spec, defaults and changed values."""
    from deq_explorer._napari._widgets import SpecPicker
    from deq_explorer.registry import SpecError, accelerators, operators, priors, solvers

    changed = {int: 7, float: 0.125, bool: False, str: "other.npy"}
    for reg in (operators, priors, solvers, accelerators):
        picker = SpecPicker(reg.kind, reg, reg.names()[0])
        for entry in reg.entries():
            picker.set_spec(entry.name)
            assert reg.options_of(picker.spec) == reg.options_of(entry.name), picker.spec
            for o in entry.schema():
                value = o.choices[-1] if o.choices else changed[o.type]
                spec = f"{entry.name}:{o.name}={o.format(value)}"
                picker.set_spec(spec)
                assert reg.options_of(picker.spec) == reg.options_of(spec), picker.spec
    with pytest.raises(SpecError, match="no option 'bogus'"):
        picker.set_spec("anderson:bogus=1")
    with pytest.raises(SpecError, match="option 'm'"):
        picker.set_spec("anderson:m=0")  # below the spin box's range: not shown silently clamped


def _text_room(edit) -> int:
    """The width a line edit has for its text (its contents rectangle, less Qt's margins)."""
    from qtpy.QtWidgets import QStyle, QStyleOptionFrame

    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    rect = edit.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, edit)
    margins = edit.textMargins()
    return rect.width() - margins.left() - margins.right() - 4  # QLineEdit's 2 px a side


def test_option_fields_are_wide_enough_to_read(make_napari_viewer, qtbot):
    """In a narrow dock every option's text field still shows its whole value."""
    from deq_explorer._napari.reconstruct import ReconstructPanel

    viewer = make_napari_viewer()
    panel = ReconstructPanel(viewer)
    qtbot.addWidget(panel)
    panel.solver.set_spec("mcnet-admm:beta=1.0154751539230347")
    panel.accel.set_spec("anderson:m=5,beta=1.0,lam=0.0001")
    panel.prior.set_spec("tv:weight=0.0125")
    panel.show()
    qtbot.waitExposed(panel)
    panel.resize(panel.minimumSizeHint())  # as narrow as the panel goes (a narrow dock)
    qtbot.wait(50)
    for picker in (panel.solver, panel.accel, panel.prior):
        for f in picker.fields.values():
            if type(f.widget).__name__ == "LineEdit":
                edit, text = f.widget.native, f.widget.value
                assert _text_room(edit) >= edit.fontMetrics().horizontalAdvance(text), text
