"""The one fixed-point driver: ``z ← acc.step(z, T(z))`` until a :class:`StopRule` ends it.

:func:`steps` is the loop itself, and every iteration in the package runs through
it: the monitoring iterator :func:`~deq_explorer.fixedpoint.iterate` (GUI, CLI,
API) adds images and metrics on top of each :class:`Step`; :func:`fixed_point`
drains it for the DEQ forward pass and the implicit backward solve, which iterate
on a gradient that has no image at all.

One meaning everywhere: the residual is measured per batch item and the largest
one is compared with ``rule.tol``; an iteration diverges when its residual is not
finite or the next state exceeds ``rule.diverge_at`` in magnitude; ``stop()`` is
polled after an iteration that neither converged nor reached the budget. Each
iteration synchronises with the device once.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from deq_explorer.checks import integer
from deq_explorer.errors import SolverError
from deq_explorer.fixedpoint.accelerators import NoAcceleration
from deq_explorer.fixedpoint.base import Accelerator, Criterion, Status, StopRule

__all__ = [
    "FixedPointResult",
    "Residual",
    "Step",
    "fixed_point",
    "mse_residual",
    "relative_residual",
    "steps",
]

#: ``(z, T(z)) -> (B,)`` float64: a residual per batch item
Residual = Callable[[Tensor, Tensor], Tensor]


def _items(t: Tensor) -> Tensor:
    """``t`` as ``(B, d)``: one row per batch item (a tensor of ndim ≤ 1 is one item)."""
    return t.flatten(1) if t.ndim > 1 else t.reshape(1, -1)


def relative_residual(z: Tensor, Tz: Tensor) -> Tensor:
    """``‖T(z)_b − z_b‖ / ‖z_b‖`` per item ``(B,)``, float64.

    An item with ``z_b = 0`` is measured against ``‖T(z)_b‖`` instead (1 unless
    ``T(z)_b = 0`` too, then 0).
    """
    z, Tz = _items(z), _items(Tz)
    num = torch.linalg.vector_norm(Tz - z, dim=1, dtype=torch.float64)
    den = torch.linalg.vector_norm(z, dim=1, dtype=torch.float64)
    den = torch.where(den > 0, den, torch.linalg.vector_norm(Tz, dim=1, dtype=torch.float64))
    return torch.where(num == 0, 0.0, num / den)


def mse_residual(z: Tensor, Tz: Tensor) -> Tensor:
    """Mean squared difference ``‖T(z)_b − z_b‖² / d`` per item ``(B,)`` (multi-task DEQ rule)."""
    return (_items(Tz) - _items(z)).double().pow(2).mean(dim=1)


@dataclass(frozen=True)
class Step:
    """What iteration ``k`` (1-based) of :func:`steps` did.

    Attributes
    ----------
    k : int
        Iteration number (evaluations of ``T`` so far).
    z, Tz : Tensor
        The state the iteration started from and the map's value there.
    z_next : Tensor
        The state the accelerator chose; on DIVERGED, ``z`` (the last finite state).
    residual : float
        Largest per-item residual of ``(z, Tz)``.
    change : float
        Largest per-item relative change ``‖z_next − z‖/‖z‖`` (the residual without
        acceleration).
    status : Status
        RUNNING, or why the loop ends after this step.
    """

    k: int
    z: Tensor
    Tz: Tensor
    z_next: Tensor
    residual: float
    change: float
    status: Status


def check_rule(rule: StopRule) -> None:
    """Raise :class:`~deq_explorer.errors.SolverError` for a rule no loop can run."""
    integer(rule.max_iter, "max_iter", error=SolverError)
    if not rule.tol >= 0 or not rule.diverge_at > 0:
        raise SolverError(f"tol must be ≥ 0 and diverge_at > 0; got {rule}")
    integer(rule.patience, "patience", 0, error=SolverError)
    if not isinstance(rule.criterion, Criterion):
        raise SolverError(f"criterion must be a Criterion; got {rule.criterion!r}")


def steps(
    T: Callable[[Tensor], Tensor],
    z0: Tensor,
    accelerator: Accelerator | None = None,
    rule: StopRule = StopRule(),  # noqa: B008 - frozen, shared safely
    *,
    residual: Residual = relative_residual,
    stop: Callable[[], bool] | None = None,
) -> Iterator[Step]:
    """Iterate ``z ← accelerator.step(z, T(z))`` from ``z0`` and yield every :class:`Step`.

    The last step yielded carries the reason the loop ends, checked in this order:
    DIVERGED (residual not finite, or ``max |z_next| > rule.diverge_at``),
    CONVERGED (``rule.criterion``, the residual or the iterate change, ``< rule.tol``;
    ``tol = 0`` never converges), MAX_ITER (``k == rule.max_iter``), STALLED (with
    ``tol > 0``, ``rule.patience`` iterations without the smallest residual falling
    by 1 %), STOPPED (``stop()`` returned True). Runs in the
    caller's grad mode (unrolled backprop keeps the graph of every step); the
    residual and the bound are measured on detached tensors.

    Parameters
    ----------
    T : callable
        The map, ``Tensor -> Tensor`` of the same shape ``(B, ...)``.
    z0 : Tensor
        Starting state.
    accelerator : Accelerator, optional
        Step rule (``None``: plain iteration ``z ← T(z)``).
    rule : StopRule
        Budget, tolerance and divergence bound.
    residual : callable
        ``(z, T(z)) -> (B,)``; default :func:`relative_residual`.
    stop : callable, optional
        Polled after each iteration that would otherwise continue.
    """
    check_rule(rule)
    acc = NoAcceleration() if accelerator is None else accelerator
    z, state = z0, acc.init(z0)
    best, best_k = math.inf, 0  # the smallest residual, and when it last fell by 1 %
    for k in range(1, rule.max_iter + 1):
        Tz = T(z)
        z_next, state = acc.step(z, Tz, state)
        zd, zn = z.detach(), z_next.detach()
        measured = torch.stack(
            [
                residual(zd, Tz.detach()).amax().double(),
                relative_residual(zd, zn).amax(),
                torch.linalg.vector_norm(zn, ord=math.inf).double(),
            ]
        )
        r, change, peak = measured.tolist()
        if not (math.isfinite(r) and peak <= rule.diverge_at):
            yield Step(k, z, Tz, z, r, change, Status.DIVERGED)
            return
        if r < 0.99 * best:
            best, best_k = r, k
        if (change if rule.criterion is Criterion.CHANGE else r) < rule.tol:
            status = Status.CONVERGED
        elif k == rule.max_iter:
            status = Status.MAX_ITER
        elif rule.tol > 0 and rule.patience and k - best_k >= rule.patience:
            status = Status.STALLED
        elif stop is not None and stop():
            status = Status.STOPPED
        else:
            status = Status.RUNNING
        yield Step(k, z, Tz, z_next, r, change, status)
        if status is not Status.RUNNING:
            return
        z = z_next


@dataclass(frozen=True)
class FixedPointResult:
    """Outcome of :func:`fixed_point`.

    Attributes
    ----------
    z : Tensor
        Last state (the last finite one if the iteration diverged).
    iterations : int
        Number of evaluations of the map.
    residual : float
        Residual measured at the last evaluation (largest over the batch).
    status : Status
        CONVERGED, MAX_ITER, DIVERGED or STOPPED.
    """

    z: Tensor
    iterations: int
    residual: float
    status: Status


def fixed_point(
    T: Callable[[Tensor], Tensor],
    z0: Tensor,
    *,
    accelerator: Accelerator | None = None,
    rule: StopRule = StopRule(),  # noqa: B008 - frozen, shared safely
    residual: Residual = relative_residual,
    stop: Callable[[], bool] | None = None,
) -> FixedPointResult:
    """Drain :func:`steps` (same arguments) and keep only where it ended."""
    (last,) = deque(steps(T, z0, accelerator, rule, residual=residual, stop=stop), maxlen=1)
    return FixedPointResult(last.z_next, last.k, last.residual, last.status)
