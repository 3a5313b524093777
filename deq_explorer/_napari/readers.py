"""npe2 readers: NIfTI volumes as image stacks with their voxel size; saved runs and
measurement files as layers.

A saved run is an ``.npz`` written by the Reconstruct panel's "Save run…" or the CLI's
``--out`` (:mod:`deq_explorer.runs`); a measurement file is an ``.npz`` with ``y`` and the
``operator`` that made it (:func:`~deq_explorer.images.measurement_spec`; complex k-space
for MRI). Both open with a measurement layer that reconstructs as it is (its recipe reads
the file again). Only such files are taken, and they are read without pickles.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from deq_explorer import runs
from deq_explorer._napari._convert import LayerData, to_layer_data
from deq_explorer._napari._problems import KEY, display, file_measurement
from deq_explorer.images import measurement_spec
from deq_explorer.volumes import axial_stack, is_volume, load_volume

__all__ = ["get_reader", "get_run_reader", "read_measurements", "read_runs"]


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
    """The reader for saved runs (``.npz`` with a run's ``config``) or for measurement files
    (``.npz`` with ``y`` and ``operator``), else ``None``."""
    paths = _paths(path)
    if paths and all(runs.is_run_file(p) for p in paths):
        return read_runs
    if paths and all(measurement_spec(p) is not None for p in paths):
        return read_measurements
    return None


def read_measurements(path: str | list[str]) -> list[LayerData]:
    """One measurement layer per file (``y`` with the ``operator`` it names)."""
    layers = []
    for p in _paths(path):
        spec = measurement_spec(p)
        layers.append(file_measurement(p, spec["operator"], spec["noise"], f"y · {Path(p).stem}"))
    return layers


def read_runs(path: str | list[str]) -> list[LayerData]:
    """Per file: its measurement (log-magnitude if complex, as the Problem panel shows
    k-space), its reference, and each run's result holding its config and history."""
    layers: list[LayerData] = []
    for p in _paths(path):
        saved = runs.load(p)
        stem = Path(p).stem
        gray = {"contrast_limits": (0.0, 1.0)}
        problem = saved.problem
        operator = problem.get("solve_operator") or problem.get("operator")
        if operator:  # a measurement that runs again
            layers.append(file_measurement(p, operator, float(problem.get("noise") or 0.0),
                                       f"y · {stem}"))  # fmt: skip
        else:
            y, rgb = to_layer_data(display(torch.from_numpy(saved.y)))
            role = {KEY: {"role": "saved measurement", "source": p, **problem}}
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
