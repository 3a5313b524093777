"""What the panels change in a viewer: a comparison's arrangement, kept per viewer so that any
panel puts it back, and layers refilled in place.

The Compare panel shows its results in napari's grid mode with every other layer hidden.
:func:`arrange` remembers the viewer as it was (grid mode, each layer's visibility) and
:func:`give_back` restores it, hiding the comparison's results (they stay in the layer
list); Compare's "Restore view" and the next Reconstruct run both call it, so neither
panel needs the other. No maths, no widgets: plain bookkeeping on napari's viewer model.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

__all__ = ["arrange", "give_back", "keep_hidden", "refill"]

_saved: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def arrange(viewer: Any) -> None:
    """Remember ``viewer`` as it is (unless a comparison already did) and hide every layer."""
    if viewer not in _saved:  # a second comparison keeps the first one's "before"
        _saved[viewer] = {
            "grid": bool(viewer.canvas.grid.enabled),
            "visible": {id(layer): layer.visible for layer in viewer.layers},
            "hide": [],
        }
    for layer in viewer.layers:
        layer.visible = False


def keep_hidden(viewer: Any, layer: Any) -> None:
    """``layer`` is a comparison's result: :func:`give_back` hides it."""
    if viewer in _saved:
        _saved[viewer]["hide"].append(layer)


def give_back(viewer: Any) -> bool:
    """Put ``viewer`` back as :func:`arrange` found it; returns whether there was anything.

    Grid mode as it was, the layers of then shown as then, the comparison's results hidden.
    """
    saved = _saved.pop(viewer, None)
    if saved is None:
        return False
    viewer.canvas.grid.enabled = saved["grid"]
    hidden = {id(layer) for layer in saved["hide"]}
    for layer in viewer.layers:
        if id(layer) in hidden:
            layer.visible = False
        elif id(layer) in saved["visible"]:
            layer.visible = saved["visible"][id(layer)]
    return True


def refill(layer: Any, data: np.ndarray) -> bool:
    """Show ``data`` in ``layer`` without replacing its array where it fits; whether it fit.

    Same shape and type: copied into the layer's own buffer and redrawn (half the cost of
    napari's data setter; no extent change, the thumbnail waits for a later refresh).
    Same shape, another type: the data setter. Another shape: nothing (the caller decides).
    """
    old = layer.data
    if old.shape != data.shape:
        return False
    if isinstance(old, np.ndarray) and old.dtype == data.dtype and old.flags.writeable:
        np.copyto(old, data)
        layer.refresh(thumbnail=False, highlight=False, extent=False)
    else:
        layer.data = data
    return True
