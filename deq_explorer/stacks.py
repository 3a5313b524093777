"""Stacks and volumes: one problem per image, solved a batch of images at a time.

napari data is nD: a Z or T stack of images, a volume, a time series of volumes. A
:class:`Stack` holds one :class:`~deq_explorer.api.Problem` per image, all sharing the
same operators; image ``i`` of :func:`simulate_stack` is exactly
``api.simulate(image_i, seed=seed + i)`` (its own noise), so one slice solved alone is
the same problem. :func:`run_stack` solves the images ``batch`` at a time: the solvers
and priors take ``(B, C, H, W)``, and the fixed-point core measures the residual per
batch item and compares the largest with the tolerance, so a batch ends when its
slowest image has converged (the others keep iterating at their fixed points).
:func:`batch_size` picks the batch from the memory a solve of one image needs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deq_explorer import api
from deq_explorer.errors import ProblemError, RequestError
from deq_explorer.fixedpoint.base import Iterate, Status
from deq_explorer.metrics import SSIM_MIN_SIZE, batch_psnr, batch_ssim

__all__ = [
    "MAX_BATCH",
    "Stack",
    "StackIterate",
    "StackRecord",
    "StackSolution",
    "batch_size",
    "from_measurements",
    "reconstruct_stack",
    "run_stack",
    "simulate_stack",
]

#: the most images solved together: more gains little on a CPU and makes progress coarse
MAX_BATCH = 16
#: the share of the free memory a batch may take
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Stack:
    """The problems of the images of a stack, in C order of its leading axes.

    Attributes
    ----------
    problems : tuple of Problem
        One per image, sharing ``op`` and ``sim_op``.
    shape : tuple of int
        The leading shape (``(Z,)``, ``(T, Z)`` ...); its product is ``len(problems)``.
    """

    problems: tuple[api.Problem, ...]
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.problems or math.prod(self.shape) != len(self.problems):
            raise ProblemError(
                f"a stack of leading shape {self.shape} needs {math.prod(self.shape)} "
                f"problems, got {len(self.problems)}"
            )

    def __len__(self) -> int:
        return len(self.problems)

    @property
    def op(self) -> Any:
        """The operator every image is solved with."""
        return self.problems[0].op

    @property
    def has_truth(self) -> bool:
        return all(p.x_true is not None for p in self.problems)

    def at(self, index: Sequence[int]) -> api.Problem:
        """The problem of the image at leading ``index`` (e.g. the slice napari shows)."""
        return self.problems[int(np.ravel_multi_index(tuple(index), self.shape))]

    def batch(self, start: int, stop: int) -> api.Problem:
        """Images ``start … stop − 1`` as one problem of ``stop − start`` batch items."""
        items = self.problems[start:stop]
        truth = torch.cat([p.x_true for p in items]) if self.has_truth else None
        return dataclasses.replace(items[0], y=torch.cat([p.y for p in items]), x_true=truth)

    def measurements(self) -> Tensor:
        """Every image's measurement, ``(N, *op.y_shape)``."""
        return torch.cat([p.y for p in self.problems])

    def x_init(self) -> Tensor:
        """Every image's ``init(y)``, ``(N, C, H, W)`` (computed :data:`MAX_BATCH` at a time)."""
        n = len(self)
        return torch.cat(
            [self.batch(i, min(n, i + MAX_BATCH)).x_init() for i in range(0, n, MAX_BATCH)]
        )


def _images(images: np.ndarray | Tensor, what: str) -> tuple[tuple[int, ...], Tensor]:
    """``(*lead, C, ...)`` -> its leading shape and its images ``(N, C, ...)``, if finite."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    shape = tuple(t.shape)
    if len(shape) < 4:
        raise ProblemError(
            f"a stack of {what} is (*lead, C, H, W) with at least one leading axis, got {shape}"
        )
    if not torch.isfinite(t.abs() if t.is_complex() else t).all():
        raise ProblemError(f"the {what} must be finite (no NaN/Inf)")
    return shape[:-3], t.reshape(-1, *shape[-3:])


def simulate_stack(
    images: np.ndarray | Tensor,
    operator: str,
    *,
    noise: float = 0.0,
    seed: int = 0,
    solve_operator: str | None = None,
    device: str = "auto",
    dtype: torch.dtype = torch.float32,
    crop: bool = False,
) -> Stack:
    """Simulate every image of ``images`` ``(*lead, C, H, W)`` in [0, 1] (see
    :func:`~deq_explorer.api.simulate`); image ``i`` (C order) gets noise seed ``seed + i``.

    The first image is simulated by ``api.simulate`` (which checks the options and builds
    the operators, cropped to fit with ``crop``); the others are measured by the same
    operators with their own seeds, so that image ``i`` is ``api.simulate(image_i, seed=
    seed + i)`` while the operators (an MRI mask takes ~0.1 s to draw) are built once.
    """
    lead, flat = _images(images, "images")
    if not flat.is_complex():
        lo, hi = float(flat.min()), float(flat.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ProblemError(
                f"image values lie in [{lo:.4g}, {hi:.4g}] but must lie in [0, 1]: rescale "
                "(normalise) the stack first"
            )
    first = api.simulate(flat[0], operator, noise=noise, seed=seed, solve_operator=solve_operator,
                         device=device, dtype=dtype, crop=crop)  # fmt: skip
    h, w = first.op.x_shape[-2:]
    x_all = flat[:, :, :h, :w].to(device=first.y.device, dtype=dtype).clamp(0.0, 1.0)
    problems = [first]
    with torch.no_grad():
        for i in range(1, len(flat)):
            x = x_all[i : i + 1]
            generator = torch.Generator().manual_seed(int(seed) + i)
            y = first.sim_op.measure(x, float(noise), generator)
            problems.append(dataclasses.replace(first, y=y, x_true=x, seed=int(seed) + i))
    return Stack(tuple(problems), lead)


def from_measurements(
    measurements: np.ndarray | Tensor,
    operator: str,
    *,
    noise: float = 0.0,
    device: str = "auto",
    dtype: torch.dtype = torch.float32,
) -> Stack:
    """A stack of measurements ``(*lead, C, h, w)`` brought by the user (no ground truth;
    see :func:`~deq_explorer.api.from_measurement`, which checks the first; the others
    have its shape and type and share its operator)."""
    lead, flat = _images(measurements, "measurements")
    first = api.from_measurement(flat[0], operator, noise=noise, device=device, dtype=dtype)
    ys = flat.to(device=first.y.device, dtype=first.y.dtype)
    return Stack(
        (first, *(dataclasses.replace(first, y=ys[i : i + 1]) for i in range(1, len(flat)))),
        lead,
    )


def batch_size(stack: Stack, prior: Any, most: int | None = None) -> int:
    """How many images of ``stack`` to solve together with ``prior``.

    :func:`~deq_explorer.api.estimate_cost` gives the memory one image's solve needs; a
    batch takes at most :data:`MEMORY_SHARE` of the memory free on the device, and at
    most ``most`` images (default :data:`MAX_BATCH`; at least one).
    """
    most = MAX_BATCH if most is None else most
    problem = stack.problems[0]
    cost = api.estimate_cost(problem, api.problem_defaults(prior, problem))
    fit = most if cost.available is None else int(MEMORY_SHARE * cost.available // cost.bytes)
    return max(1, min(len(stack), most, fit))


@dataclass(frozen=True)
class StackIterate:
    """One iteration of the batch of images ``start … stop − 1`` of ``total``.

    ``iterate`` is the batch's (``x`` is ``(B, C, H, W)``; residual: the batch's largest;
    consistency, PSNR, SSIM: batch means). On the batch's last iterate ``psnr`` and
    ``ssim`` hold each image's (``None`` elsewhere and without ground truth).
    """

    start: int
    stop: int
    total: int
    iterate: Iterate
    psnr: tuple[float, ...] | None = None
    ssim: tuple[float, ...] | None = None


def _per_image(x: Tensor, truth: Tensor | None) -> tuple[tuple | None, tuple | None]:
    if truth is None:
        return None, None
    with torch.no_grad():
        psnr = tuple(batch_psnr(x, truth).tolist())
        ssim = tuple(batch_ssim(x, truth).tolist()) if min(x.shape[-2:]) >= SSIM_MIN_SIZE else None
    return psnr, ssim


def run_stack(
    stack: Stack,
    request: api.Request,
    *,
    batch: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[StackIterate]:
    """Stream the solve of every image of ``stack``, ``batch`` images at a time.

    Each batch is one :func:`~deq_explorer.api.run` of ``request`` (each image starts from
    its ``init(y)``: a start image ``request.w`` is refused). ``batch`` defaults to
    :func:`batch_size`. ``stop`` is polled between iterations and between batches; a
    stopped batch is the last.
    """
    if request.w is not None:
        raise RequestError("w", "a stack solve starts each image from its init(y); give no w")
    n = len(stack)
    size = batch_size(stack, request.settled().prior) if batch is None else batch
    if not (isinstance(size, int) and size >= 1):
        raise ProblemError(f"batch must be a positive integer, got {size!r}")
    for start in range(0, n, size):
        if start and stop is not None and stop():
            return
        end = min(n, start + size)
        problem = stack.batch(start, end)
        for it in api.run(problem, request, stop=stop):
            if it.status is Status.RUNNING:
                yield StackIterate(start, end, n, it)
            else:
                yield StackIterate(start, end, n, it, *_per_image(it.x, problem.x_true))
        if it.status is Status.STOPPED:
            return


class StackRecord:
    """Each image's outcome as its batch ends: status, iterations, residual, PSNR, SSIM.

    Lists of ``len(stack)``; ``None`` for an image not solved (yet).
    """

    def __init__(self, n: int) -> None:
        self.status: list[str | None] = [None] * n
        self.iterations: list[int | None] = [None] * n
        self.residual: list[float | None] = [None] * n
        self.psnr: list[float | None] = [None] * n
        self.ssim: list[float | None] = [None] * n

    def end(self, start: int, stop: int, k: int, residual: float, status: str,
            psnr: Sequence[float] | None, ssim: Sequence[float] | None) -> None:  # fmt: skip
        """Record the batch ``start … stop − 1`` ending with ``status`` at iteration ``k``."""
        n = stop - start
        self.status[start:stop] = [status] * n
        self.iterations[start:stop] = [k] * n
        self.residual[start:stop] = [residual] * n
        self.psnr[start:stop] = list(psnr) if psnr is not None else [None] * n
        self.ssim[start:stop] = list(ssim) if ssim is not None else [None] * n

    @property
    def solved(self) -> int:
        """How many images have an outcome."""
        return sum(s is not None for s in self.status)

    def as_dict(self) -> dict[str, list]:
        return {key: list(getattr(self, key))
                for key in ("status", "iterations", "residual", "psnr", "ssim")}  # fmt: skip


@dataclass(frozen=True)
class StackSolution:
    """The images of a stack solve ``x`` ``(*lead, C, H, W)`` (zeros for images not solved,
    after a stop) and each image's outcome."""

    x: Tensor
    record: StackRecord


def reconstruct_stack(
    stack: Stack,
    request: api.Request,
    *,
    batch: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> StackSolution:
    """Run :func:`run_stack` to its end."""
    x = torch.zeros((len(stack), *stack.op.x_shape), device=stack.op.device, dtype=stack.op.dtype)
    record = StackRecord(len(stack))
    for s in run_stack(stack, request, batch=batch, stop=stop):
        it = s.iterate
        if it.status is not Status.RUNNING:
            x[s.start : s.stop] = it.x
            record.end(s.start, s.stop, it.k, it.residual, it.status.value, s.psnr, s.ssim)
    return StackSolution(x.reshape(*stack.shape, *x.shape[1:]), record)
