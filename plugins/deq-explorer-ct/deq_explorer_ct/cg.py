"""Batched conjugate gradients for symmetric positive (semi-)definite systems."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CG", "conjugate_gradient"]


@dataclass(frozen=True, kw_only=True)
class CG:
    """Stopping rule of :func:`conjugate_gradient`.

    Attributes
    ----------
    tol : float or None
        Stop an item once ``‖b − M x‖ ≤ tol·‖b‖``; ``None`` picks it by
        precision: 1e-6 in float32 (and below), 1e-12 in float64.
    max_iter : int
        Iteration cap (the last iterate is returned when it is reached).
    """

    tol: float | None = None
    max_iter: int = 200

    def __post_init__(self) -> None:
        bad_tol = self.tol is not None and not self.tol > 0
        if bad_tol or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"CG needs tol > 0 (or None) and an integer max_iter >= 1; got {self}")

    def tolerance(self, dtype: torch.dtype) -> float:
        """The relative tolerance used for tensors of ``dtype``."""
        if self.tol is not None:
            return self.tol
        return 1e-12 if dtype == torch.float64 else 1e-6


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-item inner product of ``(B, ...)`` tensors, shaped ``(B, 1, ..., 1)``."""
    return (a * b).flatten(1).sum(1).reshape((-1,) + (1,) * (a.ndim - 1))


def conjugate_gradient(
    M: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor, rule: CG = CG()
) -> Tensor:
    """Solve ``M(x) = b`` independently for every batch item.

    Parameters
    ----------
    M : callable
        Symmetric positive semi-definite linear map ``(B, ...) -> (B, ...)``
        acting on each item separately.
    b : Tensor
        Right-hand sides ``(B, ...)``.
    x0 : Tensor
        Starting point, same shape as ``b`` (a warm start).
    rule : CG
        Tolerance and iteration cap.

    Returns
    -------
    Tensor
        ``x`` with ``‖b − M x‖ ≤ tol·‖b‖`` per item, or the iterate at the cap.
    """
    x = x0
    r = b - M(x)
    p = r
    rr = _dot(r, r)
    target = rule.tolerance(b.dtype) ** 2 * _dot(b, b)
    for _ in range(rule.max_iter):
        active = rr > target
        if not bool(active.any()):
            break
        Mp = M(p)
        pMp = _dot(p, Mp)
        alpha = torch.where(active & (pMp > 0), rr / torch.where(pMp > 0, pMp, 1), 0)
        x = x + alpha * p
        r = r - alpha * Mp
        rr_new = _dot(r, r)
        beta = torch.where(rr > 0, rr_new / torch.where(rr > 0, rr, 1), 0)
        p = r + beta * p
        rr = rr_new
    return x
