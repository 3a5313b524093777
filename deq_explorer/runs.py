"""Saved runs: the ``.npz`` that the CLI's ``--out`` and the GUI's "Save run…" write.

One run holds ``x``, ``init``, ``y`` (complex for MRI) and ``reference`` (each without
the batch axis; no reference for a measurement without one), ``history`` (structured:
k, residual, consistency, psnr, ssim) and ``config`` (a JSON string: the run's settings
and results with the problem's). Several runs (a comparison) hold ``x`` stacked
``(R, C, H, W)`` in order, ``history_0``, ``history_1`` ... and a ``config`` with the
``problem`` and a list of ``runs``. Files are written atomically and read without
pickles (``allow_pickle=False``): opening one never runs code.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deq_explorer import jsonio
from deq_explorer.atomic import atomic_write
from deq_explorer.errors import RunFileError

if TYPE_CHECKING:
    from deq_explorer.api import Problem

__all__ = ["HISTORY_KEYS", "RunFile", "RunFileError", "SavedRun", "is_run_file", "load", "save"]

#: the per-iteration values a saved history holds (with ``k``), in this order
HISTORY_KEYS = ("residual", "consistency", "psnr", "ssim")


@dataclass(frozen=True)
class SavedRun:
    """One run as saved: its result ``x`` ``(C, H, W)``, its history and its config.

    ``history`` maps ``k`` (optional: 1, 2, ... by default) and :data:`HISTORY_KEYS`
    to per-iteration lists (None where a value is unknown); other keys are not saved.
    """

    x: np.ndarray
    history: dict[str, list]
    config: dict[str, Any]


@dataclass(frozen=True)
class RunFile:
    """What :func:`load` reads: the runs, the problem's config and its arrays."""

    runs: list[SavedRun]
    problem: dict[str, Any]
    y: np.ndarray
    init: np.ndarray | None = None
    reference: np.ndarray | None = None


def _history_array(history: dict[str, list]) -> np.ndarray:
    """The history as one structured array (NaN where a value is unknown)."""
    keys = [k for k in HISTORY_KEYS if k in history]
    n = len(history[keys[0]]) if keys else len(history.get("k", []))
    out = np.zeros(n, dtype=[("k", np.int64)] + [(k, np.float64) for k in keys])
    out["k"] = history["k"] if "k" in history else np.arange(1, n + 1)
    for k in keys:
        out[k] = [math.nan if v is None else v for v in history[k]]
    return out


def _history_dict(array: np.ndarray) -> dict[str, list]:
    """A structured history back as lists (None for NaN), as the GUI's metadata keeps it."""
    out: dict[str, list] = {"k": [int(k) for k in array["k"]]}
    for name in array.dtype.names or ():
        if name != "k":
            out[name] = [None if math.isnan(v) else float(v) for v in array[name]]
    return out


def _numpy(t: Any) -> np.ndarray:
    """One batch item of a tensor (or an array without a batch axis) as numpy."""
    return t[0].detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def save(path: str | Path, problem: Problem, runs: Sequence[SavedRun]) -> Path:
    """Write ``runs`` on ``problem`` to ``path`` atomically (the old file or the new one).

    Parameters
    ----------
    path : str or Path
        The ``.npz`` to write (its folder must exist; an existing file is replaced).
    problem : Problem
        What was solved: ``y``, ``init(y)``, the reference and the problem's config.
    runs : sequence of SavedRun
        One run (the format of ``reconstruct --out``) or several (``compare --out``).

    Raises
    ------
    OSError
        When the file cannot be written; nothing is left behind.
    """
    arrays = {"init": _numpy(problem.x_init()), "y": _numpy(problem.y)}
    if len(runs) == 1:
        (run,) = runs
        arrays["x"] = np.asarray(run.x)
        arrays["history"] = _history_array(run.history)
        config: dict[str, Any] = run.config | problem.config()
    else:
        arrays["x"] = np.stack([np.asarray(r.x) for r in runs])
        for i, r in enumerate(runs):
            arrays[f"history_{i}"] = _history_array(r.history)
        config = {"problem": problem.config(), "runs": [r.config for r in runs]}
    arrays["config"] = np.array(jsonio.dumps(config))
    if problem.x_true is not None:
        arrays["reference"] = _numpy(problem.x_true)
    target = Path(path)
    with atomic_write(target) as f:
        np.savez(f, **arrays)
    return target


def load(path: str | Path) -> RunFile:
    """Read a file :func:`save` wrote (no pickles are loaded).

    Raises
    ------
    RunFileError
        When the file is not readable as a saved run.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except (OSError, zipfile.BadZipFile, ValueError) as exc:  # not a zip, or a pickle
        raise RunFileError(f"{path}: not a saved run ({exc})") from None
    try:
        config = json.loads(str(arrays["config"]))
        x, y = arrays["x"], arrays["y"]
    except (KeyError, ValueError) as exc:
        raise RunFileError(f"{path}: not a saved run (no valid {exc})") from None
    if "runs" in config:
        problem, configs = config.get("problem", {}), config["runs"]
        histories = [arrays.get(f"history_{i}") for i in range(len(configs))]
        xs = list(x)
    else:
        problem, configs, histories, xs = config, [config], [arrays.get("history")], [x]
    if len(xs) != len(configs):
        raise RunFileError(f"{path}: {len(xs)} results for {len(configs)} runs")
    runs = [
        SavedRun(xi, {} if h is None else _history_dict(h), c)
        for xi, h, c in zip(xs, histories, configs, strict=True)
    ]
    return RunFile(runs, problem, y, arrays.get("init"), arrays.get("reference"))


def is_run_file(path: str | Path) -> bool:
    """Whether ``path`` is an ``.npz`` holding a saved run's ``config`` (read, never run)."""
    if not str(path).endswith(".npz"):
        return False
    try:
        with np.load(path, allow_pickle=False) as f:
            return "x" in f.files and isinstance(json.loads(str(f["config"])), dict)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):  # no config, a pickle, no JSON
        return False
