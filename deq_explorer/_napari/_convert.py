"""Array layouts between the core ``(C, H, W)`` and napari layers.

The core works on ``(C, H, W)`` float images in [0, 1]; napari shows ``(H, W)``
(gray) or ``(H, W, 3)`` (RGB) arrays. These helpers only move axes and read
pixel types; they do no image maths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from skimage.util import img_as_float32

from deq_explorer.errors import LayerError

__all__ = [
    "LayerData",
    "LayerError",
    "from_layer_data",
    "layer_array",
    "shown_slice",
    "stack_array",
    "to_layer_data",
]

#: napari's layer data tuple: ``(data, keyword arguments, layer type)``
LayerData = tuple[Any, dict[str, Any], str]


def to_layer_data(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(C, H, W)`` -> napari data and its ``rgb`` flag.

    Gray ``(1, H, W)`` becomes ``(H, W)``; colour ``(3, H, W)`` becomes
    ``(H, W, 3)`` with ``rgb=True``; stacks ``(N, C, H, W)`` keep ``N`` first.
    """
    x = np.asarray(x)
    if x.shape[-3] == 1:
        return x[..., 0, :, :], False
    return np.moveaxis(x, -3, -1), True


def layer_array(
    data: object, rgb: bool, name: str = "layer", index: tuple[int, ...] = ()
) -> np.ndarray:
    """A 2-D gray or RGB layer's data -> ``(C, H, W)`` as it is (its own dtype and values).

    ``index`` picks one image of a stack or volume (its leading axes, e.g. the slice
    napari shows, :func:`shown_slice`).

    Raises
    ------
    LayerError
        For data that is not one real-valued 2-D image of at least 8×8.
    """
    arr = np.asarray(data[tuple(index)] if index else data)
    if rgb:
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
            raise LayerError(f"layer {name!r}: expected (H, W, 3) RGB data, got {arr.shape}")
        arr = np.moveaxis(arr[..., :3], -1, 0)
    else:
        if arr.ndim != 2:
            raise LayerError(
                f"layer {name!r} has shape {arr.shape}; pick a single 2-D image "
                "(gray or RGB), not a stack or a volume"
            )
        arr = arr[None]
    return _checked(arr, name)


def stack_array(data: object, rgb: bool, name: str = "layer") -> np.ndarray:
    """A stack or volume layer's data (leading axes, then a gray or RGB image) ->
    ``(*lead, C, H, W)`` as it is (its own dtype and values).

    Raises
    ------
    LayerError
        For a single 2-D image, or images that :func:`layer_array` refuses.
    """
    arr = np.asarray(data)
    if arr.ndim - (3 if rgb else 2) < 1:
        raise LayerError(f"layer {name!r} has shape {arr.shape}: one image, not a stack")
    arr = np.moveaxis(arr[..., :3], -1, -3) if rgb else arr[..., None, :, :]
    return _checked(arr, name)


def _checked(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` ``(..., C, H, W)`` if its images are real numbers of at least 8×8."""
    if min(arr.shape[-2:]) < 8:
        raise LayerError(f"layer {name!r} is {arr.shape[-2]}×{arr.shape[-1]}; need at least 8×8")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise LayerError(f"layer {name!r} has {arr.dtype} pixels; expected numbers")
    if np.iscomplexobj(arr):
        raise LayerError(f"layer {name!r} is complex; pick a real image layer")
    return arr


def shown_slice(layer: Any, point: Sequence[float]) -> tuple[int, ...]:
    """The leading-axis indices of the image of ``layer`` napari shows at world ``point``
    (``()`` for a single 2-D image)."""
    lead = layer.ndim - (3 if layer.rgb else 2)
    if lead <= 0:
        return ()
    coords = layer.world_to_data(point)[:lead]
    shape = np.shape(layer.data)[:lead]
    return tuple(
        int(np.clip(round(float(c)), 0, n - 1)) for c, n in zip(coords, shape, strict=True)
    )


def from_layer_data(
    data: object, rgb: bool, name: str = "layer", *, unit_range: bool = True
) -> np.ndarray:
    """A 2-D gray or RGB layer's data -> ``(C, H, W)`` float32 in [0, 1].

    Integer data is scaled by its type's range; float data must already lie in
    [0, 1] (up to rounding) and be finite. With ``unit_range=False`` float data
    of any finite range is taken as it is (a backbone's output, an ``init(y)``
    that overshoots), not clipped.

    Raises
    ------
    LayerError
        For data that is not one 2-D image, not finite, or out of range.
    """
    arr = layer_array(data, rgb, name)
    if np.issubdtype(arr.dtype, np.integer):
        return np.ascontiguousarray(img_as_float32(arr))
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise LayerError(f"layer {name!r} contains NaN or Inf pixels")
    if not unit_range:
        return np.ascontiguousarray(arr)
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise LayerError(
            f"layer {name!r} has values in [{arr.min():.3g}, {arr.max():.3g}]; "
            "float images must lie in [0, 1] (rescale the layer, or choose a normalisation)"
        )
    return np.ascontiguousarray(np.clip(arr, 0.0, 1.0))
