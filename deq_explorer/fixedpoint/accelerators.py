"""Accelerators for ``z ← T(z)``: none, Nesterov momentum, Anderson mixing.

Each accelerator is a frozen dataclass of hyper-parameters registered in
``registry.accelerators`` (its fields are the options). The state lives in a
separate object: ``state = acc.init(z0)``, then every iteration
``z_next, state = acc.step(z, T(z), state)``. All rules act per batch item.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from deq_explorer.registry import accelerators

__all__ = ["Anderson", "AndersonState", "Nesterov", "NesterovState", "NoAcceleration"]


def _per_item(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a ``(B,)`` tensor to broadcast against ``like`` ``(B, ...)``."""
    return v.view(-1, *([1] * (like.ndim - 1))).to(like.dtype)


@accelerators.register("none")
@dataclass(frozen=True, kw_only=True)
class NoAcceleration:
    """Plain fixed-point iteration z ← T(z)."""

    def init(self, z0: Tensor) -> None:
        return None

    def step(self, z: Tensor, Tz: Tensor, state: None) -> tuple[Tensor, None]:
        return Tz, None


@dataclass(frozen=True)
class NesterovState:
    """Previous map output ``T(z_{k−1})`` ``(B, ...)`` and the ``t`` sequence ``(B,)``."""

    previous: Tensor
    t: Tensor


@accelerators.register("nesterov")
@dataclass(frozen=True, kw_only=True)
class Nesterov:
    """Nesterov momentum z ← T(z) + μ(T(z) − T(z_prev)) (momentum, restart).

    ``momentum < 0`` uses the FISTA schedule ``μ_k = (t_k − 1)/t_{k+1}``,
    ``t_{k+1} = (1 + sqrt(1 + 4t_k²))/2``; ``0 ≤ momentum < 1`` a fixed μ.
    With ``restart`` the momentum of an item is reset whenever it points
    against the residual (``⟨z − T(z), T(z) − T(z_prev)⟩ > 0``,
    O'Donoghue & Candès' gradient restart).
    """

    momentum: float = -1.0
    restart: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.momentum) and self.momentum < 1):
            raise ValueError(
                f"nesterov: momentum must be < 1 (negative for the FISTA schedule); "
                f"got {self.momentum}"
            )

    def init(self, z0: Tensor) -> NesterovState:
        return NesterovState(previous=z0, t=z0.new_ones(z0.shape[0], dtype=torch.float64))

    def step(self, z: Tensor, Tz: Tensor, state: NesterovState) -> tuple[Tensor, NesterovState]:
        t_next = (1.0 + torch.sqrt(1.0 + 4.0 * state.t**2)) / 2.0
        mu = (
            (state.t - 1.0) / t_next
            if self.momentum < 0
            else torch.full_like(t_next, self.momentum)
        )
        jump = Tz - state.previous
        if self.restart:
            against = ((z - Tz) * jump).flatten(1).sum(1) > 0
            mu = torch.where(against, 0.0, mu)
            t_next = torch.where(against, 1.0, t_next)
        z_next = Tz + _per_item(mu, Tz) * jump
        return z_next, NesterovState(previous=Tz, t=t_next)


@dataclass(frozen=True)
class AndersonState:
    """Anderson history in preallocated buffers, updated in place.

    Attributes
    ----------
    F : Tensor
        ``(B, m, n)`` past map outputs ``T(z_i)``, flattened.
    G : Tensor
        ``(B, m, n)`` past residuals ``T(z_i) − z_i``.
    H : Tensor
        ``(B, m, m)`` Gram matrix ``G Gᵀ`` (float64).
    k : int
        Number of steps taken (slot ``k mod m`` is written next).
    """

    F: Tensor
    G: Tensor
    H: Tensor
    k: int = 0


@accelerators.register("anderson")
@dataclass(frozen=True, kw_only=True)
class Anderson:
    """Anderson mixing over the last m iterates (m, lam, beta).

    Each step finds weights ``α`` (``Σα = 1``) minimising
    ``‖Σ α_i g_i‖² + lam·s·‖α‖²`` over the stored residuals
    ``g_i = T(z_i) − z_i`` (``s``, the largest ``‖g_i‖²``, makes ``lam``
    scale-free) and returns ``Σ α_i (T(z_i) − (1 − β) g_i)``. An item whose
    small system is singular or non-finite takes the plain step ``T(z)``.
    """

    m: int = 5
    lam: float = 1e-4
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.m < 1:
            raise ValueError(f"anderson: memory m must be at least 1; got {self.m}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"anderson: regularisation lam must be ≥ 0; got {self.lam}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"anderson: mixing beta must be > 0; got {self.beta}")

    def init(self, z0: Tensor) -> AndersonState:
        B, n = z0.shape[0], z0[0].numel()
        buffers = z0.new_empty(2, B, self.m, n)
        H = z0.new_zeros(B, self.m, self.m, dtype=torch.float64)
        return AndersonState(F=buffers[0], G=buffers[1], H=H)

    def step(self, z: Tensor, Tz: Tensor, state: AndersonState) -> tuple[Tensor, AndersonState]:
        B = z.shape[0]
        F, G, H = state.F, state.G, state.H
        j, used = state.k % self.m, min(state.k + 1, self.m)
        f = Tz.reshape(B, -1)
        g = f - z.reshape(B, -1)
        F[:, j] = f
        G[:, j] = g
        row = torch.bmm(G[:, :used], g.unsqueeze(-1)).squeeze(-1).double()  # (B, used)
        H[:, j, :used] = row
        H[:, :used, j] = row
        gram = H[:, :used, :used]
        scale = gram.diagonal(dim1=1, dim2=2).amax(-1)
        eye = torch.eye(used, dtype=gram.dtype, device=gram.device)
        system = gram + (self.lam * scale)[:, None, None] * eye
        ones = gram.new_ones(B, used, 1)
        sol, info = torch.linalg.solve_ex(system, ones)
        alpha = (sol / sol.sum(1, keepdim=True)).squeeze(-1)
        bad = (info != 0) | ~torch.isfinite(alpha).all(1)
        plain = (torch.arange(used, device=alpha.device) == j).to(alpha.dtype)
        alpha = torch.where(bad[:, None], plain, alpha).to(f.dtype).unsqueeze(1)  # (B, 1, used)
        z_next = torch.bmm(alpha, F[:, :used]).squeeze(1)
        if self.beta != 1.0:
            z_next = z_next - (1.0 - self.beta) * torch.bmm(alpha, G[:, :used]).squeeze(1)
        return z_next.view_as(z), dataclasses.replace(state, k=state.k + 1)
