"""Background jobs: the core generators, turned into messages the GUI can show.

Each job is a generator that takes ``stop`` (a callable, True to stop between
two iterations), sets torch's grad mode for its own thread, and yields frozen
records holding numpy *copies*. No Qt here: the panels run these in napari's
``thread_worker`` through :class:`~deq_explorer._napari._runner.Runner`, and
the benchmark runs them headless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deq_explorer import api, metrics, training
from deq_explorer._napari._convert import LayerData
from deq_explorer._napari._problems import Placement, problem_layers
from deq_explorer.fixedpoint.base import Iterate
from deq_explorer.images import Scaling

__all__ = [
    "Frame",
    "Simulated",
    "compare_job",
    "problem_job",
    "release_memory",
    "solve_job",
    "train_job",
]


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One iterate, copied to numpy.

    ``x``, ``change`` (``|x_k − x_{k−1}|``) and ``error`` (``|x_k − x*|``, ``None``
    without a reference) are ``(C, H, W)`` float32; ``run`` is the index of the
    configuration in a comparison (0 for a single solve).
    """

    run: int
    k: int
    x: np.ndarray
    change: np.ndarray
    error: np.ndarray | None
    residual: float
    consistency: float
    psnr: float | None
    ssim: float | None
    seconds: float
    status: str


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


def release_memory(problem: api.Problem) -> None:
    """Give cached CUDA memory back after a run on the GPU."""
    if problem.y.is_cuda:
        torch.cuda.empty_cache()


def solve_job(
    problem: api.Problem, request: api.Request, run: int = 0, *, stop: Callable[[], bool]
) -> Iterator[Frame]:
    """Stream :func:`api.run` as frames; the last frame carries the final status."""
    torch.set_grad_enabled(False)
    try:
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

    problem: api.Problem
    layers: list[LayerData]


def problem_job(
    make: Callable[[], tuple[api.Problem, Scaling]],
    recipe: dict[str, Any],
    name: str,
    placed: Placement,
    measured: bool = False,
    *,
    stop: Callable[[], bool],
) -> Iterator[Simulated]:
    """Make the problem (:func:`~deq_explorer._napari._problems.make_problem`) and its layers.

    ``make`` gives the problem and the scaling that normalised its image; the scaling goes
    into the measurement's recipe (``recipe["scaling"]``), so results can be mapped back
    to the raw units. ``stop`` is not polled: the simulation is one call. See
    :func:`~deq_explorer._napari._problems.problem_layers` for ``recipe``, ``name`` and
    ``placed``.
    """
    torch.set_grad_enabled(False)
    problem, scaling = make()
    recipe = {**recipe, "scaling": scaling.as_dict()}
    yield Simulated(problem, problem_layers(problem, recipe, name, placed, measured=measured))


def train_job(
    config: training.TrainConfig, *, stop: Callable[[], bool]
) -> Iterator[training.TrainEvent]:
    """Stream the training loop's events (grad mode on in this thread)."""
    torch.set_grad_enabled(True)
    yield from training.train(config, stop)
