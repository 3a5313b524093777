"""Classical priors: the identity (no regularisation) and isotropic total variation.

Total variation uses forward differences with a zero difference across the
last row/column (Neumann boundary), per channel:
``TV(u) = Σ_ij sqrt((u_{i,j+1} − u_ij)² + (u_{i+1,j} − u_ij)²)``. Its proximal
operator is computed by FGP, the fast gradient projection on the dual of
Beck & Teboulle (2009), batched in torch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from deq_explorer.priors.base import Prior
from deq_explorer.registry import priors

__all__ = [
    "IdentityPrior",
    "TVPrior",
    "finite_diff",
    "finite_diff_adjoint",
    "prox_tv",
    "tv",
    "tv_dual",
]


def finite_diff(u: Tensor) -> Tensor:
    """Forward differences ``D u``: ``(B, C, H, W) -> (B, C, 2, H, W)`` (horizontal, vertical).

    The difference across the last column (row) is zero.
    """
    d = u.new_zeros((*u.shape[:2], 2, *u.shape[2:]))
    d[:, :, 0, :, :-1] = u[..., 1:] - u[..., :-1]
    d[:, :, 1, :-1, :] = u[..., 1:, :] - u[..., :-1, :]
    return d


def finite_diff_adjoint(q: Tensor) -> Tensor:
    """Exact adjoint ``Dᵀ q`` of :func:`finite_diff` (minus the discrete divergence).

    ``(B, C, 2, H, W) -> (B, C, H, W)``.
    """
    qh = q[:, :, 0].clone()
    qv = q[:, :, 1].clone()
    qh[..., -1] = 0
    qv[..., -1, :] = 0
    out = -qh - qv
    out[..., 1:] += qh[..., :-1]
    out[..., 1:, :] += qv[..., :-1, :]
    return out


def tv(u: Tensor) -> Tensor:
    """Isotropic total variation per item, summed over channels; ``(B,)``."""
    return finite_diff(u).pow(2).sum(2).sqrt().flatten(1).sum(1)


def _as_weight(weight: float | Tensor, x: Tensor) -> Tensor:
    if not isinstance(weight, Tensor):
        if not weight >= 0:
            raise ValueError(f"TV weight must be non-negative; got {weight}")
        return torch.tensor(float(weight), dtype=x.dtype, device=x.device)
    w = weight.to(dtype=x.dtype, device=x.device)
    return w.view(-1, 1, 1, 1, 1) if w.ndim == 1 else w  # (B,): one weight per item


def tv_dual(b: Tensor, weight: float | Tensor, iters: int = 50) -> Tensor:
    """Dual variable ``q`` of the TV prox after ``iters`` FGP steps; ``(B, C, 2, H, W)``.

    Solves ``min_{|q_ij| ≤ λ} ½‖b − Dᵀq‖²`` (λ = ``weight``, per-pixel Euclidean
    norm over the two directions) by projected gradient with Nesterov's
    ``t``-sequence and step ``1/8 ≥ 1/‖D‖²``. The primal solution is
    ``b − Dᵀq`` (see :func:`prox_tv`).

    Parameters
    ----------
    b : Tensor
        Image ``(B, C, H, W)``.
    weight : float or Tensor
        λ ≥ 0; a ``(B,)`` tensor sets one per item.
    iters : int
        Number of FGP iterations (≥ 1).
    """
    if iters < 1:
        raise ValueError(f"TV iters must be at least 1; got {iters}")
    lam = _as_weight(weight, b)
    q = b.new_zeros((*b.shape[:2], 2, *b.shape[2:]))
    r = q
    t = 1.0
    tiny = torch.finfo(b.dtype).tiny
    for _ in range(iters):
        g = r + finite_diff(b - finite_diff_adjoint(r)) / 8.0
        scale = lam / torch.maximum(g.pow(2).sum(2, keepdim=True).sqrt(), lam).clamp_min(tiny)
        q_next = g * scale
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        r = q_next + ((t - 1.0) / t_next) * (q_next - q)
        q, t = q_next, t_next
    return q


def prox_tv(x: Tensor, weight: float | Tensor, iters: int = 50) -> Tensor:
    """``argmin_u weight·TV(u) + ½‖u − x‖²`` by ``iters`` FGP steps; ``(B, C, H, W)``."""
    return x - finite_diff_adjoint(tv_dual(x, weight, iters))


class IdentityPrior(Prior):
    """No regularisation: ``D(x) = x`` and ``prox(x) = x``."""

    name = "identity"
    sigma = 0.0

    def denoise(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        return x

    def prox(self, x: Tensor, gamma: float) -> Tensor:
        return x

    def red_grad(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


class TVPrior(Prior):
    """Isotropic total variation ``g = weight·TV``.

    ``prox(x, γ)`` is ``argmin_u γ·weight·TV(u) + ½‖u − x‖²``. As a denoiser the
    TV weight plays the noise level: ``denoise(x, sigma)`` is the TV prox with
    weight ``sigma`` (``sigma=None`` uses :attr:`sigma`, which equals
    ``weight``), so ``denoise(x) == prox(x, 1)`` and solvers that scale the
    denoiser's noise input (FB) scale the TV weight the same way.

    Parameters
    ----------
    weight : float
        Regularisation weight λ ≥ 0 on the [0, 1] intensity scale.
    iters : int
        FGP iterations per prox evaluation.
    """

    name = "tv"

    def __init__(self, weight: float = 0.05, iters: int = 50) -> None:
        if not weight >= 0:
            raise ValueError(f"TV weight must be non-negative; got {weight}")
        if iters < 1:
            raise ValueError(f"TV iters must be at least 1; got {iters}")
        self.weight = float(weight)
        self.iters = int(iters)
        self.sigma = self.weight

    def denoise(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        return prox_tv(x, self.weight if sigma is None else sigma, self.iters)

    def prox(self, x: Tensor, gamma: float) -> Tensor:
        return prox_tv(x, gamma * self.weight, self.iters)

    def __repr__(self) -> str:
        return f"TVPrior(weight={self.weight}, iters={self.iters})"


@priors.register("identity")
def identity() -> IdentityPrior:
    """No prior: the denoiser returns its input (data term only)."""
    return IdentityPrior()


@priors.register("tv")
def total_variation(*, weight: float = 0.05, iters: int = 50) -> TVPrior:
    """Isotropic total variation, prox by FGP (weight, iters)."""
    return TVPrior(weight=weight, iters=iters)
