"""Choosing a prior's strength from the data alone: predicted SURE or the discrepancy principle.

A stronger prior (larger TV weight, larger denoiser noise input ``s``) fits the data
less. Both methods need the noise level ``σ`` and score a candidate ``s`` by its
solution ``x_s`` only:

- ``"sure"`` (default): Stein's unbiased estimate of the predicted risk
  ``E‖A(x_s − x_true)‖²``, ``‖Ax_s − y‖² − mσ² + 2σ² div``, whose divergence
  ``div = Σ ∂(Ax_s)_i/∂y_i`` is estimated by Monte Carlo from one extra solve with
  ``y + εb`` (``b`` standard normal on the measured entries, ``ε = σ``; Ramani, Blu &
  Unser 2008). Minimised over ``log s``. Exact for denoising; it only sees the
  measured entries, so it may under-regularise strongly undersampled problems (MRI).
- ``"discrepancy"``: the ``s`` whose residual ``‖Ax_s − y‖`` equals the expected noise
  norm ``σ√m``; one solve per candidate. It tends to over-regularise, and fails where
  the residual cannot reach ``σ√m`` (a PnP-PGM denoiser prior weighs the data
  by ``τ``).

``m`` counts the real degrees of freedom measured
(:func:`~deq_explorer.scale.noise_norm`). Each search
brackets its value by factors of :data:`FACTOR` around a start and then narrows the
bracket on a log scale; every solve starts from the solution of the nearest
candidate tried before it (warm start).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from deq_explorer.operators.base import LinearOperator
from deq_explorer.operators.noise import add_noise
from deq_explorer.scale import noise_norm

__all__ = [
    "FACTOR",
    "METHODS",
    "Candidate",
    "Search",
    "Tuning",
    "drain",
    "minimise",
    "probe",
    "root",
    "sure",
]

#: bracketing step: each candidate outside the bracket is this factor further out
FACTOR = 4.0
#: the tuning methods, the default first
METHODS = ("sure", "discrepancy")


@dataclass(frozen=True)
class Candidate:
    """One strength tried: its ``value``, its ``score`` and the iterations of its solve.

    The score is the SURE estimate of the predicted risk per measured entry
    (``"sure"``) or the ratio ``‖Ax − y‖ / σ√m`` (``"discrepancy"``).
    """

    value: float
    score: float
    iterations: int


@dataclass(frozen=True)
class Tuning:
    """The outcome of a search.

    Attributes
    ----------
    option : str
        The prior's option that was tuned (``weight``, ``sigma``).
    value : float
        The chosen value.
    spec : str
        The prior's spec with ``option`` set to ``value``.
    method : str
        ``"sure"`` or ``"discrepancy"``; see the module.
    candidates : tuple of Candidate
        Every value tried, in order.
    note : str
        Why the search ended where it did, in words.
    """

    option: str
    value: float
    spec: str
    method: str
    candidates: tuple[Candidate, ...]
    note: str


def probe(op: LinearOperator, y: Tensor, seed: int = 0) -> Tensor:
    """The Monte-Carlo direction ``b`` of SURE: standard normal on ``y``'s measured entries."""
    b = add_noise(torch.zeros_like(y), 1.0, torch.Generator().manual_seed(seed))
    support = op.support()
    return b if support is None else b * support.to(device=y.device, dtype=b.real.dtype)


def sure(
    op: LinearOperator, y: Tensor, sigma: float, x: Tensor, x_probe: Tensor, b: Tensor
) -> float:
    """Predicted-risk SURE per measured entry from a solution and its probe solution.

    Parameters
    ----------
    op, y, sigma
        Operator, measurement ``(1, *y_shape)`` and noise level ``σ > 0``.
    x, x_probe : Tensor
        Solutions ``(1, C, H, W)`` for ``y`` and for ``y + σb``.
    b : Tensor
        The probe direction (:func:`probe`).
    """
    with torch.no_grad():
        Ax = op.A(x)
        residual = float(torch.linalg.vector_norm(Ax - y)) ** 2
        div = float(torch.real(torch.sum(torch.conj(b) * (op.A(x_probe) - Ax)))) / sigma
    m = (noise_norm(op, y, sigma) / sigma) ** 2
    return (residual - m * sigma**2 + 2 * sigma**2 * div) / m


def _best(tried: list[Candidate], key: Callable[[Candidate], float]) -> float:
    return min(tried, key=key).value


R = TypeVar("R")
#: a search: yields each candidate as it is scored, returns ``(value, candidates, note)``
Search = Generator[Candidate, None, tuple[float, tuple[Candidate, ...], str]]


def drain(
    steps: Generator[Candidate, None, R], on_candidate: Callable[[Candidate], None] | None = None
) -> R:
    """Run a search (or anything yielding candidates) to its end; its return value."""
    while True:
        try:
            c = next(steps)
        except StopIteration as end:
            return end.value
        if on_candidate is not None:
            on_candidate(c)


def root(
    ratio: Callable[[float], Candidate],
    start: float,
    *,
    rtol: float = 0.05,
    max_candidates: int = 10,
    stop: Callable[[], bool] | None = None,
) -> Search:
    """The value whose increasing score ``ratio(value).score`` is 1 (discrepancy).

    Brackets from ``start`` by :data:`FACTOR`, then bisects on a log scale; ends when
    ``|score − 1| ≤ rtol`` or after ``max_candidates``, with the candidate closest to 1.
    A generator: it yields each candidate once scored (:func:`drain` runs it).
    """
    tried: list[Candidate] = []
    lo = hi = None  # values with a score below / above 1
    value = start

    def gap(c: Candidate) -> float:
        return abs(math.log(c.score)) if c.score > 0 else math.inf

    while len(tried) < max_candidates and not (stop is not None and stop()):
        c = ratio(value)
        tried.append(c)
        yield c
        if gap(c) <= math.log1p(rtol):
            return value, tuple(tried), "the residual matches the expected noise norm"
        if c.score < 1:
            lo = value if lo is None else max(lo, value)
        else:
            hi = value if hi is None else min(hi, value)
        if lo is not None and hi is not None:
            value = math.sqrt(lo * hi)
        else:
            value = value * FACTOR if hi is None else value / FACTOR
    if not tried:
        return start, (), "stopped before the first solve"
    if lo is None or hi is None:
        side = "weakest" if hi is not None else "strongest"
        note = f"not bracketed in {len(tried)} solves: the {side} value tried"
    else:
        note = f"the closest of {len(tried)} solves"
    return _best(tried, gap), tuple(tried), note


def minimise(
    score: Callable[[float], Candidate],
    start: float,
    *,
    steps: int = 2,
    max_out: int = 3,
    stop: Callable[[], bool] | None = None,
) -> Search:
    """The value minimising ``score(value).score``, assumed unimodal in ``log value``.

    Tries ``start / FACTOR``, ``start``, ``start · FACTOR``; moves out by
    :data:`FACTOR` (at most ``max_out`` times) while the best is at an end, then
    ``steps`` times tries the two log-midpoints around the best and keeps the best
    of the three. A generator, as :func:`root`.
    """
    tried: dict[float, Candidate] = {}
    order: list[Candidate] = []

    def at(value: float) -> Generator[Candidate, None, None]:
        if value not in tried:
            tried[value] = c = score(value)
            order.append(c)
            yield c

    def halted() -> bool:
        return stop is not None and stop()

    grid = [start / FACTOR, start, start * FACTOR]
    for v in grid:
        if halted():
            break
        yield from at(v)
    moves = 0
    while not halted() and len(tried) == len(grid) and moves < max_out:
        i = min(range(len(grid)), key=lambda j: tried[grid[j]].score)
        if 0 < i < len(grid) - 1:
            break
        grid = [grid[0] / FACTOR, *grid] if i == 0 else [*grid, grid[-1] * FACTOR]
        yield from at(grid[0] if i == 0 else grid[-1])
        moves += 1
    if not order:
        return start, (), "stopped before the first solve"
    best = min(tried, key=lambda v: tried[v].score)
    edge = best in (min(tried), max(tried))
    width = FACTOR
    for _ in range(steps if not edge else 0):
        if halted():
            break
        width = math.sqrt(width)
        for v in (best / width, best * width):
            yield from at(v)
        best = min(tried, key=lambda v: tried[v].score)
    note = (f"the smallest risk estimate of {len(order)} candidates"
            + (" (at the edge of the range searched)" if edge else ""))  # fmt: skip
    if halted():
        note = "stopped: the best value so far"
    return best, tuple(order), note
