"""All four panels in one dock, as tabs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

from deq_explorer._napari.compare import ComparePanel
from deq_explorer._napari.problem import ProblemPanel
from deq_explorer._napari.reconstruct import ReconstructPanel
from deq_explorer._napari.train import TrainPanel

if TYPE_CHECKING:
    import napari

__all__ = ["Explorer"]


class Explorer(QWidget):
    """Problem / Reconstruct / Compare / Train in tabs of one dock widget."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.problem = ProblemPanel(viewer)
        self.reconstruct = ReconstructPanel(viewer)
        self.compare = ComparePanel(viewer)
        self.train = TrainPanel(viewer)
        self.tabs = QTabWidget()
        for name, panel in (
            ("Problem", self.problem),
            ("Reconstruct", self.reconstruct),
            ("Compare", self.compare),
            ("Train", self.train),
        ):
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(panel)
            self.tabs.addTab(scroll, name)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

    def reset_choices(self, *_: Any) -> None:
        """Refresh every panel's layer and registry choices."""
        for panel in (self.problem, self.reconstruct, self.compare, self.train):
            panel.reset_choices()
