"""The run model under the Reconstruct and Compare panels: what a solve produced, without Qt.

A :class:`Run` is one solve of one problem with one :class:`~deq_explorer.api.Request`:
the frames that arrived, the iterate stack under a :class:`StackPolicy` fixed when the
run starts, the texts the status line shows, and the metadata the result layer keeps.
A :class:`Comparison` is several runs on the same problem. The panels render these
and make one call per callback (``add`` when frames arrive); nothing here reads a
widget or touches a layer, so the model is tested without a viewer.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deq_explorer import api, runs, stacks
from deq_explorer._napari._jobs import Frame, StackFrame
from deq_explorer.fixedpoint.loop import contraction_rate
from deq_explorer.registry import parse_spec, solvers
from deq_explorer.tuning import Candidate, Tuning

__all__ = [
    "STATUS_WORDS",
    "Comparison",
    "Run",
    "StackPolicy",
    "StackRun",
    "history_of",
    "takes_start",
]

#: how the status line says each way a solve ends
STATUS_WORDS = {
    "converged": "converged",
    "max_iter": "stopped at the iteration cap",
    "diverged": "diverged",
    "stalled": "stalled (the residual stopped falling)",
    "stopped": "stopped by you",
}


def history_of(frames: Sequence[Frame | StackFrame]) -> dict[str, list]:
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


class _Solve:
    """What every solve the panels show has: a request, its origin, its result's name."""

    def __init__(self, request: api.Request, source: dict[str, Any] | None) -> None:
        self.request = request
        self.source = {"started": time.time(), **(source or {})}
        self.error: str | None = None
        self.candidates: list[Candidate] = []  # an ``auto`` option's tuning, as it goes
        self.tuning: Tuning | None = None  # ... and its outcome

    def fail(self, message: str) -> None:
        self.error = message

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
        option = api.auto_option(self.request.prior)
        if option is not None:
            return f"choosing {option} from the data (SURE: a few solves) before the solve …"
        return f"running {self.label} · {self.request.solver} …"

    def tuned(self, message: Candidate | Tuning) -> None:
        """Take a tuning message of the job (a candidate tried, then the outcome)."""
        if isinstance(message, Tuning):
            self.tuning = message
        else:
            self.candidates.append(message)

    def tuning_text(self) -> str:
        """The tuning so far in words (candidates tried, the value chosen)."""
        if self.tuning is not None:
            t = self.tuning
            return f"{t.option} = {t.value:.4g} from {len(t.candidates)} candidates ({t.note})"
        c = self.candidates[-1]
        return (f"choosing {api.auto_option(self.request.prior)}: candidate "
                f"{len(self.candidates)}, {c.value:.4g} → score {c.score:.3g}")  # fmt: skip

    def _config(self, problem: api.Problem) -> dict[str, Any]:
        """The request as solved: with the options the prior derived from the problem (and
        the value an ``auto`` option was tuned to, with its candidates)."""
        config = self.request.config()
        prior = self.request.prior if self.tuning is None else self.tuning.spec
        config["prior"] = api.problem_defaults(prior, problem)
        if self.tuning is not None:
            config["tuning"] = dataclasses.asdict(self.tuning)
        return config

    def _origin(self) -> dict[str, Any]:
        return {k: v for k, v in self.source.items() if k != "started"}


class Run(_Solve):
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
        super().__init__(request, source)
        self.problem, self.policy = problem, stack
        self.frames: list[Frame] = []
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

    @property
    def total(self) -> int:
        """The iteration budget :meth:`progress` counts toward."""
        return self.request.max_iter

    # -- what the panels show -------------------------------------------------------------
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
        if slow and rate >= 1:
            slow += " — the map does not contract at these settings (try a smaller step)"
        tuned = "" if self.tuning is None else f"; {self.tuning_text()}"
        return f"{said} after {f.k} iterations ({f.seconds:.2f} s){psnr}{slow}{tuned}"

    def metrics(self) -> dict[str, Any]:
        f = self.last
        return {"psnr": f.psnr, "ssim": f.ssim, "consistency": f.consistency,
                "residual": f.residual, "iterations": f.k, "seconds": f.seconds,
                "rate": contraction_rate([g.residual for g in self.frames])}  # fmt: skip

    def metadata(self, role: str) -> dict[str, Any]:
        """What the result layer keeps: settings as solved, origin, status, metrics, history."""
        return {
            "role": role,
            "config": self._config(self.problem),
            **self._origin(),
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


class StackRun(_Solve):
    """The solve of every image of a :class:`~deq_explorer.stacks.Stack`, batch by batch.

    ``x`` holds each image as its batch last showed it (``(N, C, H, W)``, zeros before);
    ``record`` each image's outcome; ``frames`` the current batch's frames (its curves).
    """

    def __init__(
        self, stack: stacks.Stack, request: api.Request, *, source: dict[str, Any] | None = None
    ) -> None:
        super().__init__(request, source)
        self.stack = stack
        self.x = np.zeros((len(stack), *stack.op.x_shape), np.float32)
        self.record = stacks.StackRecord(len(stack))
        self.frames: list[StackFrame] = []
        self.fresh: tuple[int, int] | None = None  # the images x changed in since taken
        self.batch: int | None = None  # images per batch, known with the first frame
        self._seconds = 0.0  # of the batches that ended

    def add(self, frames: Sequence[StackFrame]) -> None:
        """Take the frames that arrived (in order): images, outcomes, the batch's curves."""
        for f in frames:
            if self.frames and self.frames[-1].start != f.start:
                self.frames = []  # a new batch
            self.frames.append(f)
            self.batch = self.batch or f.stop - f.start
            if f.x is not None:
                self.x[f.start : f.stop] = f.x
                lo, hi = self.fresh or (f.start, f.stop)
                self.fresh = (min(lo, f.start), max(hi, f.stop))
            if f.status != "running":
                self._seconds += f.seconds
                self.record.end(f.start, f.stop, f.k, f.residual, f.status, f.psnr_items,
                                f.ssim_items)  # fmt: skip

    def take_fresh(self) -> tuple[int, int] | None:
        """The images ``(start, stop)`` that changed since the last call (None: none)."""
        fresh, self.fresh = self.fresh, None
        return fresh

    @property
    def last(self) -> StackFrame | None:
        return self.frames[-1] if self.frames else None

    @property
    def total(self) -> int:
        """Image-iterations of the budget: each image's ``max_iter``."""
        return len(self.stack) * self.request.max_iter

    def progress(self) -> int:
        """Image-iterations done; an image whose batch ended counts its whole budget."""
        done = self.record.solved * self.request.max_iter
        f = self.last
        if f is not None and f.status == "running":
            done += (f.stop - f.start) * min(f.k, self.request.max_iter)
        return done

    @property
    def finished(self) -> bool:
        """Whether every image was solved and none stopped by the user."""
        return self.record.solved == len(self.stack) and "stopped" not in self.record.status

    def history(self) -> dict[str, list]:
        """The current batch's scalar history (its curves)."""
        return history_of(self.frames)

    def series_name(self) -> str:
        f = self.last
        return f"images {f.start + 1}–{f.stop}" if f.stop - f.start > 1 else f"image {f.stop}"

    def per_image(self) -> dict[str, list]:
        """Each image's final PSNR and SSIM against its number (1-based), for a plot."""
        return {"k": list(range(1, len(self.stack) + 1)), "psnr": list(self.record.psnr),
                "ssim": list(self.record.ssim)}  # fmt: skip

    def images(self) -> np.ndarray:
        """``x`` in the stack's leading shape, ``(*lead, C, H, W)``."""
        return self.x.reshape(*self.stack.shape, *self.x.shape[1:])

    # -- what the panels show -------------------------------------------------------------
    def live_text(self) -> str:
        f = self.last
        psnr = "" if f.psnr is None else f", PSNR {f.psnr:.2f} dB"
        return (
            f"images {f.start + 1}–{f.stop} of {f.total} (batches of {self.batch}) · iteration "
            f"{f.k}: residual {f.residual:.2e}{psnr}"
        )

    def final_text(self) -> str:
        if self.last is None:
            return f"failed: {self.error or 'no iterate'}"
        r, n = self.record, len(self.stack)
        counts: dict[str, int] = {}
        for status in r.status:
            if status is not None:
                counts[status] = counts.get(status, 0) + 1
        said = ", ".join(f"{c} {STATUS_WORDS.get(s, s)}" for s, c in counts.items())
        psnr = [p for p in r.psnr if p is not None]
        quality = f"; PSNR {np.mean(psnr):.2f} dB (images {min(psnr):.2f}–{max(psnr):.2f})" if (
            psnr) else ""  # fmt: skip
        head = f"{n} images" if r.solved == n else f"{r.solved} of {n} images solved"
        return f"{head}: {said} ({self.seconds():.2f} s){quality}"

    def seconds(self) -> float:
        """Solving time of the batches so far."""
        f = self.last
        return self._seconds + (f.seconds if f is not None and f.status == "running" else 0.0)

    def status(self) -> str:
        """One word for the stack: ``stopped`` if any image was not solved, the images'
        status when they share one, else ``mixed``."""
        statuses = set(self.record.status)
        if None in statuses or "stopped" in statuses:
            return "stopped"
        return statuses.pop() if len(statuses) == 1 else "mixed"

    def metadata(self, role: str) -> dict[str, Any]:
        """What the result layer keeps: settings, origin, batch size and each image's outcome."""
        return {
            "role": role,
            "config": self._config(self.stack.problems[0]),
            **self._origin(),
            "status": self.status(),
            "stack": {"shape": list(self.stack.shape), "batch": self.batch},
            "images": self.record.as_dict(),
        }


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
