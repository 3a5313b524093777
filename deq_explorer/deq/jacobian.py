"""The Jacobian ``J = ∂T/∂z`` of a fixed-point map at a point: its size, for training and reports.

- :func:`jacobian_frobenius` — Hutchinson's estimate of ``‖J‖_F² / n`` from one
  vector-Jacobian product, differentiable in the map's parameters: the Jacobian
  regularisation of DEQ training (Bai et al., "Stabilizing equilibrium models by
  Jacobian regularization", 2021), which keeps the map contractive and its solves short.
- :func:`spectral_radius` — power iteration on ``J v``: how contractive the trained
  map is at its fixed point (< 1: locally convergent; model cards report it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from deq_explorer.checks import integer
from deq_explorer.errors import SolverError

__all__ = ["jacobian_frobenius", "spectral_radius"]


def _probe(z: Tensor, generator: torch.Generator | None) -> Tensor:
    e = torch.randn(z.shape, generator=generator, dtype=z.real.dtype)
    if z.is_complex():
        e = torch.complex(e, torch.randn(z.shape, generator=generator, dtype=z.real.dtype))
    return e.to(z.device)


def jacobian_frobenius(
    T: Callable[[Tensor], Tensor],
    z: Tensor,
    generator: torch.Generator | None = None,
    samples: int = 1,
) -> Tensor:
    """Hutchinson estimate of ``‖∂T/∂z (z)‖_F² / n``, ``n`` the entries of one item.

    ``E‖εᵀJ‖² = ‖J‖_F²`` for ``ε ~ N(0, I)``; each sample costs one VJP with a
    graph (``create_graph``), so the result can be added to a loss.

    Parameters
    ----------
    T : callable
        The map ``(B, ...) -> (B, ...)``.
    z : Tensor
        Point ``(B, ...)`` (detached here); usually the fixed point.
    generator : torch.Generator, optional
        Source of the probes (CPU), for reproducible training.
    samples : int
        Probe vectors averaged.

    Returns
    -------
    Tensor
        Scalar: the estimate averaged over the batch.
    """
    integer(samples, "samples", error=SolverError)
    point = z.detach().requires_grad_()
    out = T(point)
    total = out.new_zeros((), dtype=out.real.dtype)
    for _ in range(samples):
        e = _probe(out, generator)
        (vjp,) = torch.autograd.grad(out, point, e, create_graph=True, retain_graph=True)
        total = total + vjp.abs().pow(2).sum() / vjp[0].numel() / vjp.shape[0]
    return total / samples


def spectral_radius(
    T: Callable[[Tensor], Tensor],
    z: Tensor,
    iters: int = 30,
    generator: torch.Generator | None = None,
) -> float:
    """Estimate the spectral radius of ``∂T/∂z (z)`` by power iteration (batch as one map).

    ``Jv`` comes from two VJPs (``Jv = ∂/∂u ⟨Jᵀu, v⟩``). For a dominant real
    eigenvalue the estimate converges to ``|λ_max|``; otherwise it oscillates
    about it, so the last iterations' ratios are averaged.

    Parameters
    ----------
    T : callable
        The map.
    z : Tensor
        The point (a fixed point for a convergence statement).
    iters : int
        Power iterations.
    generator : torch.Generator, optional
        Source of the start vector.
    """
    point = z.detach().requires_grad_()
    with torch.enable_grad():
        out = T(point)
        u = torch.zeros_like(out, requires_grad=True)
        (jt_u,) = torch.autograd.grad(out, point, u, create_graph=True)

        def jvp(v: Tensor) -> Tensor:
            (jv,) = torch.autograd.grad(jt_u, u, v, retain_graph=True)
            return jv

        v = _probe(z, generator)
        v = v / v.norm()
        ratios = []
        for _ in range(iters):
            w = jvp(v).detach()
            norm = float(w.norm())
            ratios.append(norm)
            if norm == 0.0:
                return 0.0
            v = w / norm
    tail = ratios[-max(3, iters // 5) :]
    return sum(tail) / len(tail)
