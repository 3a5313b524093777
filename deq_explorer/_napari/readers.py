"""npe2 readers: NIfTI volumes as image stacks with their voxel size; saved runs as layers.

A saved run is an ``.npz`` written by the Reconstruct panel's "Save run…" or the CLI's
``--out`` (:mod:`deq_explorer.runs`); only files holding its ``config`` are taken, and
they are read without pickles (nothing in them is run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from deq_explorer import runs
from deq_explorer._napari._convert import LayerData, to_layer_data
from deq_explorer._napari._problems import KEY, display
from deq_explorer.volumes import axial_stack, is_volume, load_volume

__all__ = ["get_reader", "get_run_reader", "read_runs"]


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


def get_run_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The run reader for saved runs (``.npz`` with a run's ``config``), else ``None``."""
    paths = _paths(path)
    if not paths or not all(runs.is_run_file(p) for p in paths):
        return None
    return read_runs


def read_runs(path: str | list[str]) -> list[LayerData]:
    """Per file: its measurement (log-magnitude if complex, as the Problem panel shows
    k-space), its reference, and each run's result holding its config and history."""
    layers: list[LayerData] = []
    for p in _paths(path):
        saved = runs.load(p)
        stem = Path(p).stem
        gray = {"contrast_limits": (0.0, 1.0)}
        y, rgb = to_layer_data(display(torch.from_numpy(saved.y)))
        role = {KEY: {"role": "saved measurement", "source": p, **saved.problem}}
        layers.append((y, {"name": f"y · {stem}", "rgb": rgb, "metadata": role}, "image"))
        if saved.reference is not None:
            ref, rgb = to_layer_data(saved.reference)
            meta = {KEY: {"role": "reference", "source": p}}
            layers.append((ref, {"name": f"reference · {stem}", "rgb": rgb, "metadata": meta,
                                 **({} if rgb else gray)}, "image"))  # fmt: skip
        for run in saved.runs:
            x, rgb = to_layer_data(run.x)
            meta = {"role": "reconstruction", "source": p, "config": run.config,
                    "status": run.config.get("status"), "history": run.history}  # fmt: skip
            name = f"{str(run.config.get('prior', 'x')).partition(':')[0]} · {stem}"
            layers.append((x, {"name": name, "rgb": rgb, "metadata": {KEY: meta},
                               **({} if rgb else gray)}, "image"))  # fmt: skip
    return layers
