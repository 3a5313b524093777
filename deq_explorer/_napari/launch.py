"""``deq-explorer`` with no sub-command: napari with the explorer and a problem loaded."""

from __future__ import annotations

import gc
from typing import Any

__all__ = ["PLUGIN", "import_gui", "main", "open_explorer"]

PLUGIN = "deq-explorer"


def open_explorer(viewer: Any, sample: str | None = "mri_problem") -> Any:
    """Dock the tabbed explorer in ``viewer`` and open ``sample``; returns the explorer."""
    _, explorer = viewer.window.add_plugin_dock_widget(PLUGIN, "DEQ Explorer")
    if sample:
        viewer.open_sample(PLUGIN, sample)
        explorer.reset_choices()
        explorer.tabs.setCurrentIndex(1)  # Reconstruct: ready to press Run
    return explorer


def import_gui() -> None:
    """Import the GUI stack, Qt binding included; ImportError when any part is missing or broken.

    The CLI calls it first and turns the error into its install hint (napari installed without
    a Qt binding fails here, not with a traceback from inside napari).
    """
    import magicgui  # noqa: F401
    import napari  # noqa: F401
    import qtpy.QtWidgets  # noqa: F401


def main() -> int:
    """Open napari with the explorer docked and the MRI problem loaded; returns 0."""
    import napari

    viewer = napari.Viewer(title="DEQ Explorer")
    open_explorer(viewer)
    # the viewer's many long-lived objects would make every full garbage collection a
    # 100–250 ms pause of the GUI while a solve streams; keep them out of the collector's scans
    gc.collect()
    gc.freeze()
    napari.run()
    return 0
