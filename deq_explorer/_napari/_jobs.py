"""Background jobs: the core generators, turned into messages the GUI can show.

Each job is a generator that takes ``stop`` (a callable, True to stop between
two iterations), sets torch's grad mode for its own thread, and yields frozen
records holding numpy *copies*. No Qt here: the panels run these in napari's
``thread_worker`` through :class:`~deq_explorer._napari._runner.Runner`, and
the benchmark runs them headless.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deq_explorer import api, metrics, stacks, training
from deq_explorer._napari._convert import LayerData
from deq_explorer._napari._problems import Lead, Placement, Solvable, problem_layers
from deq_explorer.fixedpoint.base import Iterate, Status
from deq_explorer.images import Scaling

__all__ = [
    "Frame",
    "Simulated",
    "StackFrame",
    "compare_job",
    "problem_job",
    "release_memory",
    "solve_job",
    "stack_job",
    "train_job",
]


@dataclass(frozen=True, kw_only=True)
class _Scalars:
    """What every streamed iteration reports besides its images (see :class:`Iterate`)."""

    k: int
    residual: float
    consistency: float
    psnr: float | None
    ssim: float | None
    seconds: float
    status: str


@dataclass(frozen=True, kw_only=True)
class Frame(_Scalars):
    """One iterate, copied to numpy.

    ``x``, ``change`` (``|x_k − x_{k−1}|``) and ``error`` (``|x_k − x*|``, ``None``
    without a reference) are ``(C, H, W)`` float32; ``run`` is the index of the
    configuration in a comparison (0 for a single solve).
    """

    run: int
    x: np.ndarray
    change: np.ndarray
    error: np.ndarray | None


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach()[0].to("cpu", torch.float32).numpy().copy()


def to_frame(it: Iterate, reference: torch.Tensor | None, run: int = 0) -> Frame:
    """Copy an :class:`Iterate` (batch item 0) to a :class:`Frame`."""
    error = None if reference is None else _numpy(metrics.error_map(it.x, reference))
    return Frame(
        run=run,
        k=it.k,
        x=_numpy(it.x),
        change=_numpy(it.change),
        error=error,
        residual=float(it.residual),
        consistency=float(it.consistency),
        psnr=it.psnr,
        ssim=it.ssim,
        seconds=float(it.seconds),
        status=it.status.value,
    )


def release_memory(problem: Solvable) -> None:
    """Give cached CUDA memory back after a run on the GPU."""
    if (problem.problems[0] if isinstance(problem, stacks.Stack) else problem).y.is_cuda:
        torch.cuda.empty_cache()


def solve_job(
    problem: api.Problem, request: api.Request, run: int = 0, *, stop: Callable[[], bool]
) -> Iterator[Frame]:
    """Stream :func:`api.run` as frames; the last frame carries the final status.

    A prior option given as ``auto`` is tuned first (:func:`api.tune_steps`): each
    candidate and then the :class:`~deq_explorer.tuning.Tuning` come before the frames.
    """
    torch.set_grad_enabled(False)
    try:
        if api.auto_option(request.prior) is not None:
            tuning = yield from api.tune_steps(problem, request, stop=stop)
            yield tuning
            request = dataclasses.replace(request, prior=tuning.spec)
        for it in api.run(problem, request, stop=stop):
            yield to_frame(it, problem.x_true, run)
    finally:
        release_memory(problem)


def compare_job(
    problem: api.Problem, requests: Sequence[api.Request], *, stop: Callable[[], bool]
) -> Iterator[Frame]:
    """Solve the same problem with each request in turn (``Frame.run`` = index)."""
    for i, request in enumerate(requests):
        if stop():
            return
        yield from solve_job(problem, request, run=i, stop=stop)


@dataclass(frozen=True)
class Simulated:
    """A problem made in the background and the layers that show it."""

    problem: Solvable
    layers: list[LayerData]


def problem_job(
    make: Callable[[], tuple[Solvable, Scaling]],
    recipe: dict[str, Any],
    name: str,
    placed: Placement,
    measured: bool = False,
    lead: Lead = ((), ()),
    *,
    stop: Callable[[], bool],
) -> Iterator[Simulated]:
    """Make the problem (:func:`~deq_explorer._napari._problems.make_problem`) and its layers.

    ``make`` gives the problem and the scaling that normalised its image; the scaling goes
    into the measurement's recipe (``recipe["scaling"]``), so results can be mapped back
    to the raw units. ``stop`` is not polled: the simulation is one call. See
    :func:`~deq_explorer._napari._problems.problem_layers` for ``recipe``, ``name`` and
    ``placed`` and ``lead``.
    """
    torch.set_grad_enabled(False)
    problem, scaling = make()
    recipe = {**recipe, "scaling": scaling.as_dict()}
    layers = problem_layers(problem, recipe, name, placed, measured=measured, lead=lead)
    yield Simulated(problem, layers)


@dataclass(frozen=True, kw_only=True)
class StackFrame(_Scalars):
    """One iteration of the batch of images ``start … stop − 1`` of a stack of ``total``.

    ``x`` ``(B, C, H, W)`` float32 is a copy of the batch's images when it is due (on the
    batch's first and last iterations, and every ``STACK_IMAGES_EVERY_S``), else ``None``;
    the scalars are the batch's (residual: the largest; the others: means); ``psnr_items``
    and ``ssim_items`` each image's, on the batch's last iteration.
    """

    start: int
    stop: int
    total: int
    x: np.ndarray | None
    psnr_items: tuple[float, ...] | None
    ssim_items: tuple[float, ...] | None


#: how often a stack solve copies its batch's images for the result layer
STACK_IMAGES_EVERY_S = 0.5


def stack_job(
    stack: stacks.Stack, request: api.Request, *, stop: Callable[[], bool]
) -> Iterator[StackFrame]:
    """Stream :func:`stacks.run_stack` (batch size from the free memory) as frames."""
    torch.set_grad_enabled(False)
    copied = -np.inf
    try:
        for s in stacks.run_stack(stack, request, stop=stop):
            it, now = s.iterate, time.perf_counter()
            due = (it.k == 1 or it.status is not Status.RUNNING
                   or now - copied >= STACK_IMAGES_EVERY_S)  # fmt: skip
            if due:
                copied = now
            yield StackFrame(
                start=s.start, stop=s.stop, total=s.total, k=it.k,
                x=it.x.detach().to("cpu", torch.float32).numpy().copy() if due else None,
                residual=float(it.residual), consistency=float(it.consistency), psnr=it.psnr,
                ssim=it.ssim, seconds=float(it.seconds), status=it.status.value,
                psnr_items=s.psnr, ssim_items=s.ssim,
            )  # fmt: skip
    finally:
        release_memory(stack)


def train_job(
    config: training.TrainConfig, *, stop: Callable[[], bool]
) -> Iterator[training.TrainEvent]:
    """Stream the training loop's events (grad mode on in this thread)."""
    torch.set_grad_enabled(True)
    yield from training.train(config, stop)
