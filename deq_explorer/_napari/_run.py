"""The run model under the Reconstruct and Compare panels: what a solve produced, without Qt.

A :class:`Run` is one solve of one problem with one :class:`~deq_explorer.api.Request`:
the frames that arrived, the iterate stack under a :class:`StackPolicy` fixed when the
run starts, the texts the status line shows, and the metadata the result layer keeps.
A :class:`Comparison` is several runs on the same problem. The panels render these
and make one call per callback (``add`` when frames arrive); nothing here reads a
widget or touches a layer, so the model is tested without a viewer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deq_explorer import api, runs
from deq_explorer._napari._jobs import Frame
from deq_explorer.fixedpoint.loop import contraction_rate
from deq_explorer.registry import parse_spec, solvers

__all__ = ["STATUS_WORDS", "Comparison", "Run", "StackPolicy", "history_of", "takes_start"]

#: how the status line says each way a solve ends
STATUS_WORDS = {
    "converged": "converged",
    "max_iter": "stopped at the iteration cap",
    "diverged": "diverged",
    "stalled": "stalled (the residual stopped falling)",
    "stopped": "stopped by you",
}


def history_of(frames: Sequence[Frame]) -> dict[str, list]:
    """The scalar history of a run (lists by key), as stored in the result's metadata."""
    keys = ("k", "residual", "consistency", "psnr", "ssim", "seconds")
    return {key: [getattr(f, key) for f in frames] for key in keys}


def takes_start(solver: str | None) -> bool:
    """Whether the solver spec's entry starts from a given image ``w`` (registry metadata)."""
    if not solver:
        return False
    try:
        name = parse_spec(solver)[0]
    except ValueError:
        return False
    return name in solvers and bool(solvers.entry(name).metadata.get("takes_start"))


@dataclass(frozen=True)
class StackPolicy:
    """Which iterates a run keeps: every ``every``-th (and the last), at most ``capacity``."""

    every: int
    capacity: int

    @classmethod
    def within(
        cls, budget_mb: int, every: int, max_iter: int, shape: tuple[int, ...]
    ) -> StackPolicy:
        """The policy that keeps every ``every``-th of ``max_iter`` float32 iterates of
        ``shape`` ``(C, H, W)`` inside ``budget_mb`` MiB (at least one)."""
        wanted = -(-max_iter // every)
        per_frame = 4 * int(np.prod(shape))
        return cls(every, max(1, min(wanted, (budget_mb * 2**20) // per_frame)))

    def keeps(self, f: Frame) -> bool:
        return f.k % self.every == 0 or f.status != "running"


class Run:
    """One solve: ``problem`` and ``request`` in, frames, stack and metadata out.

    Parameters
    ----------
    problem : api.Problem
        What is solved.
    request : api.Request
        What it is solved with (settled: solver, accelerator and tolerance named).
    stack : StackPolicy, optional
        Keep iterates into a stack (None: keep none).
    source : dict, optional
        What the result records of its origin (measurement layer name, problem recipe),
        taken at the start: the layer may be renamed or deleted while the run goes on.
    """

    def __init__(
        self,
        problem: api.Problem,
        request: api.Request,
        *,
        stack: StackPolicy | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.problem, self.request, self.policy = problem, request, stack
        self.source = {"started": time.time(), **(source or {})}
        self.frames: list[Frame] = []
        self.error: str | None = None
        self._stack: np.ndarray | None = None
        self.stack_ks: list[int] = []

    # -- input ------------------------------------------------------------------------
    def add(self, frames: Sequence[Frame]) -> None:
        """Take the frames that arrived (in order) and keep those the stack policy wants."""
        for f in frames:
            if self.policy is not None and self.policy.keeps(f):
                if self._stack is None:
                    self._stack = np.empty((self.policy.capacity, *f.x.shape), np.float32)
                if len(self.stack_ks) < len(self._stack):
                    self._stack[len(self.stack_ks)] = f.x
                    self.stack_ks.append(f.k)
        self.frames.extend(frames)

    def fail(self, message: str) -> None:
        self.error = message

    # -- state ------------------------------------------------------------------------
    @property
    def last(self) -> Frame | None:
        return self.frames[-1] if self.frames else None

    @property
    def ended(self) -> bool:
        """Whether the last frame ends the solve (converged, cap, diverged, stopped)."""
        return self.last is not None and self.last.status != "running"

    @property
    def finished(self) -> bool:
        """Whether it ended on its own (not stopped by the user)."""
        return self.ended and self.last.status != "stopped"

    def progress(self) -> int:
        """Iterations toward the budget; a solve that ended early counts the whole budget."""
        if self.ended:
            return self.request.max_iter
        return min(self.last.k, self.request.max_iter) if self.last else 0

    def history(self) -> dict[str, list]:
        return history_of(self.frames)

    def stack(self) -> np.ndarray | None:
        """The kept iterates ``(n, C, H, W)`` (None when none were kept)."""
        return None if self._stack is None else self._stack[: len(self.stack_ks)]

    # -- what the panels show -------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.request.label

    @property
    def result_name(self) -> str:
        """The result layer's name: the prior and the problem (``tv · mri:rate=0.3 · brain``)."""
        prior = self.label.partition(":")[0]
        if prior.endswith(api.CHECKPOINT_SUFFIXES):
            prior = Path(prior).stem
        problem = str(self.source.get("measurement", "")).removeprefix("y · ")
        return f"{prior} · {problem}" if problem else prior

    def starting_text(self) -> str:
        return f"running {self.label} · {self.request.solver} …"

    def live_text(self) -> str:
        f = self.last
        psnr = "" if f.psnr is None else f", PSNR {f.psnr:.2f} dB"
        return f"iteration {f.k}: residual {f.residual:.2e}{psnr}"

    def final_text(self) -> str:
        f = self.last
        if f is None:
            return f"failed: {self.error or 'no iterate'}"
        psnr = "" if f.psnr is None else f", PSNR {f.psnr:.2f} dB, SSIM {f.ssim:.3f}"
        said = STATUS_WORDS.get(f.status, f.status)
        rate = self.metrics()["rate"]
        slow = f"; residual ratio ≈ {rate:.3f} per iteration" if (
            f.status in ("max_iter", "stalled") and rate is not None) else ""  # fmt: skip
        return f"{said} after {f.k} iterations ({f.seconds:.2f} s){psnr}{slow}"

    def metrics(self) -> dict[str, Any]:
        f = self.last
        return {"psnr": f.psnr, "ssim": f.ssim, "consistency": f.consistency,
                "residual": f.residual, "iterations": f.k, "seconds": f.seconds,
                "rate": contraction_rate([g.residual for g in self.frames])}  # fmt: skip

    def metadata(self, role: str) -> dict[str, Any]:
        """What the result layer keeps: settings as solved, origin, status, metrics, history."""
        config = self.request.config()
        # as solved: with the options the prior derived from the problem (TV's weight)
        config["prior"] = api.problem_defaults(self.request.prior, self.problem)
        return {
            "role": role,
            "config": config,
            **{k: v for k, v in self.source.items() if k != "started"},
            "status": self.last.status,
            "metrics": self.metrics(),
            "history": self.history(),
        }

    def saved(self) -> runs.SavedRun:
        """The run as :mod:`deq_explorer.runs` saves it (the last iterate as ``x``)."""
        meta = self.metadata("reconstruction")
        config = {
            **meta["config"],
            "status": meta["status"],
            **meta["metrics"],
            "measurement": meta.get("measurement"),
            "recipe": meta.get("problem"),
        }
        return runs.SavedRun(self.last.x, self.history(), config)

    def save(self, path: str | Path) -> Path:
        """Write the run to ``path`` in the format of the CLI's ``--out`` (``OSError`` if not)."""
        return runs.save(path, self.problem, [self.saved()])


class Comparison:
    """Several runs on one problem, solved one after another (``Frame.run`` is the index)."""

    def __init__(self, problem: api.Problem, requests: Sequence[api.Request]) -> None:
        self.runs = [Run(problem, r) for r in requests]

    def add(self, frames: Sequence[Frame]) -> list[int]:
        """Hand each frame to its run; the indices of the runs that got any, in order."""
        touched: dict[int, list[Frame]] = {}
        for f in frames:
            touched.setdefault(f.run, []).append(f)
        for i, fs in touched.items():
            self.runs[i].add(fs)
        return sorted(touched)

    def progress(self) -> tuple[int, int]:
        """``(done, total)`` iterations over all runs."""
        return (sum(r.progress() for r in self.runs), sum(r.request.max_iter for r in self.runs))

    def final_text(self) -> str:
        done, total = sum(r.finished for r in self.runs), len(self.runs)
        if done == total:
            return f"all {total} runs finished"
        return f"stopped: {done} of {total} runs finished"
