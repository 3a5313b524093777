"""npe2 reader: NIfTI volumes (``.nii``, ``.nii.gz``) as image stacks with their voxel size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deq_explorer._napari._convert import LayerData
from deq_explorer.volumes import axial_stack, is_volume, load_volume

__all__ = ["get_reader"]


def _paths(path: str | list[str]) -> list[str]:
    return [path] if isinstance(path, str) else list(path)


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The volume reader for one NIfTI path (or a list of them), else ``None``."""
    paths = _paths(path)
    if not paths or not all(is_volume(p) for p in paths):
        return None
    return read_volumes


def read_volumes(path: str | list[str]) -> list[LayerData]:
    """One image layer per volume: axial slices in [0, 1], scale = the voxel size."""
    layers = []
    for p in _paths(path):
        stack, scale = axial_stack(*load_volume(p))
        name = Path(p).name.removesuffix(".gz").removesuffix(".nii")
        layers.append((stack, {"name": name, "scale": scale, "colormap": "gray"}, "image"))
    return layers
