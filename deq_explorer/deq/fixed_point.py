"""A lean fixed-point loop on raw tensors, shared by the DEQ forward and backward passes.

:func:`deq_explorer.fixedpoint.iterate` is the monitoring loop: it reads the
image out of every iterate and reports consistency, change maps and PSNR. A
training step needs none of that, and the backward pass iterates on a
gradient ``g`` that has no image, operator or measurement at all. This loop
keeps only what both need: the map, any :class:`Accelerator`, a
:class:`StopRule`, and the final state ``z`` itself (for ADMM ``(x, λ)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from deq_explorer.fixedpoint.base import Accelerator, Status, StopRule

__all__ = ["FixedPointResult", "fixed_point", "mse_residual", "relative_residual"]

Residual = Callable[[Tensor, Tensor], float]
DEFAULT_RULE = StopRule()


def relative_residual(z: Tensor, Tz: Tensor) -> float:
    """``‖T(z) − z‖ / ‖z‖`` over the whole batch (``‖T(z) − z‖`` when ``z = 0``)."""
    num = torch.linalg.vector_norm(Tz - z)
    den = torch.linalg.vector_norm(z)
    return float(num / den) if float(den) > 0 else float(num)


def mse_residual(z: Tensor, Tz: Tensor) -> float:
    """Mean squared difference ``‖T(z) − z‖² / d`` (the multi-task DEQ stop rule)."""
    return float(torch.mean((Tz - z) ** 2))


@dataclass(frozen=True)
class FixedPointResult:
    """Outcome of :func:`fixed_point`.

    Attributes
    ----------
    z : Tensor
        Last iterate (the last finite one if the iteration diverged).
    iterations : int
        Number of evaluations of the map.
    residual : float
        Residual measured at the last evaluation.
    status : Status
        CONVERGED, MAX_ITER, DIVERGED or STOPPED.
    """

    z: Tensor
    iterations: int
    residual: float
    status: Status


def fixed_point(
    f: Callable[[Tensor], Tensor],
    z0: Tensor,
    *,
    accelerator: Accelerator | None = None,
    rule: StopRule = DEFAULT_RULE,
    residual: Residual = relative_residual,
    stop: Callable[[], bool] | None = None,
) -> FixedPointResult:
    """Iterate ``z ← acc.step(z, f(z))`` until ``rule`` or ``stop`` ends it.

    Runs in whatever grad mode the caller chose (the DEQ forward and backward
    call it under ``torch.no_grad``; unrolled backprop keeps the graph).

    Parameters
    ----------
    f : callable
        The map, ``Tensor -> Tensor`` of the same shape.
    z0 : Tensor
        Starting point.
    accelerator : Accelerator, optional
        Step rule (``None``: plain iteration ``z ← f(z)``).
    rule : StopRule
        ``max_iter``, ``tol`` on ``residual(z, f(z))`` (0 = never) and
        ``diverge_at`` (largest magnitude allowed in ``f(z)``).
    residual : callable
        ``(z, f(z)) -> float``; default :func:`relative_residual`.
    stop : callable, optional
        Checked before every evaluation; ``True`` ends with STOPPED.
    """
    if rule.max_iter < 1:
        raise ValueError(f"StopRule.max_iter must be ≥ 1, got {rule.max_iter}")
    z = z0
    state = accelerator.init(z0) if accelerator is not None else None
    res = float("inf")
    for k in range(1, rule.max_iter + 1):
        if stop is not None and stop():
            return FixedPointResult(z, k - 1, res, Status.STOPPED)
        Tz = f(z)
        peak = float(Tz.detach().abs().max()) if Tz.numel() else 0.0
        if not peak <= rule.diverge_at:  # also catches NaN
            return FixedPointResult(z, k, float("inf"), Status.DIVERGED)
        res = residual(z.detach(), Tz.detach())
        if accelerator is None:
            z = Tz
        else:
            z, state = accelerator.step(z, Tz, state)
        if rule.tol > 0 and res < rule.tol:
            return FixedPointResult(z, k, res, Status.CONVERGED)
    return FixedPointResult(z, rule.max_iter, res, Status.MAX_ITER)
