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
