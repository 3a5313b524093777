"""Accelerators for ``z ← T(z)``: none, Nesterov momentum, Anderson mixing.

Each accelerator is a frozen dataclass of hyper-parameters registered in
``registry.accelerators`` (its fields are the options). The state lives in a
separate object: ``state = acc.init(z0)``, then every iteration
``z_next, state = acc.step(z, T(z), state)``. All rules act per batch item.

Both accelerators are *safeguarded* (option ``safeguard``, on by default): each item
remembers the iterate with the smallest residual ``‖T(z) − z‖`` seen so far and that
point's map output. When an accelerated step lands on a residual more than ``safeguard``
times that best one, the step is undone: the item's history (Anderson) or momentum
(Nesterov) restarts and its next iterate is the plain step ``T(z_best)`` from the best
point. On maps that are only barely contractive (PnP with a learned denoiser) the
unguarded rules stall or diverge where plain iteration converges; guarded, they fall
back to plain iteration from the best point. ``safeguard=0`` turns it off.

The default factor 3 undoes only clear blow-ups: a strict guard (1) was faster on a
contractive map (SR ×2 with ``dncnn-awgn``: Nesterov 99 iterations, not 204) but 2.3 dB
worse with ``deq-sr`` at ×3, whose map is not contractive (plain iteration ends at
16.7 dB there), so falling back to plain steps is no floor (BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor

from deq_explorer.checks import non_negative, positive
from deq_explorer.errors import SolverError
from deq_explorer.registry import Meta, accelerators

__all__ = [
    "Anderson",
    "AndersonState",
    "Guard",
    "Nesterov",
    "NesterovState",
    "NoAcceleration",
]


def _per_item(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a ``(B,)`` tensor to broadcast against ``like`` ``(B, ...)``."""
    return v.view(-1, *([1] * (like.ndim - 1))).to(like.dtype)


@dataclass(frozen=True)
class Guard:
    """The safeguard's memory, per item: the reference residual ``(B,)``, ``T`` there, and
    whether the item's current iterate is a fallback ``(B,)`` bool.

    ``restarts`` counts the steps undone so far (all items together).
    """

    best: Tensor
    best_Tz: Tensor
    fallback: Tensor
    restarts: int = 0

    @staticmethod
    def start(z0: Tensor) -> Guard:
        inf = torch.full((z0.shape[0],), math.inf, dtype=torch.float64, device=z0.device)
        no = torch.zeros(z0.shape[0], dtype=torch.bool, device=z0.device)
        return Guard(best=inf, best_Tz=torch.zeros_like(z0), fallback=no)

    def check(self, z: Tensor, Tz: Tensor, factor: float) -> tuple[Tensor, Guard]:
        """``(undo (B,) bool, updated guard)`` for the pair ``z, T(z)`` just evaluated.

        ``undo`` marks the items whose accelerated step landed on a residual above
        ``factor`` times their reference (or not finite). A fallback step is never undone:
        it is plain iteration, the floor, and its point becomes the new reference even
        where it is worse (so a map whose plain residual is not monotone cannot make the
        guard cycle). Elsewhere the reference follows the best residual.
        """
        r = torch.linalg.vector_norm((Tz - z).flatten(1), dim=1, dtype=torch.float64)
        undo = torch.zeros_like(self.fallback)
        if factor > 0:
            undo = torch.isfinite(self.best) & ~self.fallback & ~(r <= factor * self.best)
        take = ~undo & ((r < self.best) | self.fallback)
        best = torch.where(take, r, self.best)
        best_Tz = torch.where(_per_item(take, Tz).bool(), Tz, self.best_Tz)
        return undo, Guard(best, best_Tz, undo, self.restarts + int(undo.sum()))


#: the safeguard option of Nesterov and Anderson
_SAFEGUARD = "undo a step whose residual exceeds this factor × the best (0: off, else ≥ 1)"
Safeguard = Annotated[float, Meta(_SAFEGUARD, "[0, inf)")]


def _check_safeguard(name: str, safeguard: float) -> None:
    if not (math.isfinite(safeguard) and (safeguard == 0 or safeguard >= 1)):
        raise SolverError(
            f"{name}: safeguard must be 0 (off) or a factor ≥ 1 on the best residual; "
            f"got {safeguard}"
        )


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
    """Previous map output ``T(z_{k−1})`` ``(B, ...)``, the ``t`` sequence ``(B,)``, the guard."""

    previous: Tensor
    t: Tensor
    guard: Guard


@accelerators.register("nesterov")
@dataclass(frozen=True, kw_only=True)
class Nesterov:
    """Nesterov momentum z ← T(z) + μ(T(z) − T(z_prev)) (momentum, restart, safeguard).

    ``momentum < 0`` uses the FISTA schedule ``μ_k = (t_k − 1)/t_{k+1}``,
    ``t_{k+1} = (1 + sqrt(1 + 4t_k²))/2``; ``0 ≤ momentum < 1`` a fixed μ.
    With ``restart`` the momentum of an item is reset whenever it points
    against the residual (``⟨z − T(z), T(z) − T(z_prev)⟩ > 0``,
    O'Donoghue & Candès' gradient restart). ``safeguard``: see the module.
    """

    momentum: Annotated[float, Meta("momentum μ; negative: FISTA's schedule", "(-inf, 1)")] = -1.0
    restart: Annotated[bool, Meta("reset the momentum when it points against the residual")] = True
    safeguard: Safeguard = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.momentum) and self.momentum < 1):
            raise SolverError(
                f"nesterov: momentum must be < 1 (negative for the FISTA schedule); "
                f"got {self.momentum}"
            )
        _check_safeguard("nesterov", self.safeguard)

    def init(self, z0: Tensor) -> NesterovState:
        t = z0.new_ones(z0.shape[0], dtype=torch.float64)
        return NesterovState(previous=z0, t=t, guard=Guard.start(z0))

    def step(self, z: Tensor, Tz: Tensor, state: NesterovState) -> tuple[Tensor, NesterovState]:
        undo, guard = state.guard.check(z, Tz, self.safeguard)
        t_next = (1.0 + torch.sqrt(1.0 + 4.0 * state.t**2)) / 2.0
        mu = (
            (state.t - 1.0) / t_next
            if self.momentum < 0
            else torch.full_like(t_next, self.momentum)
        )
        jump = Tz - state.previous
        reset = undo
        if self.restart:
            reset = reset | (((z - Tz) * jump).flatten(1).sum(1) > 0)
        mu = torch.where(reset, 0.0, mu)
        t_next = torch.where(reset, 1.0, t_next)
        z_next = Tz + _per_item(mu, Tz) * jump
        back = _per_item(undo, Tz).bool()  # undone: the plain step from the best point
        z_next = torch.where(back, guard.best_Tz, z_next)
        previous = torch.where(back, guard.best_Tz, Tz)
        return z_next, NesterovState(previous=previous, t=t_next, guard=guard)


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
    valid : Tensor
        ``(B, m)`` which slots hold history of the item (a restart clears them).
    guard : Guard
        The safeguard's best residuals and map outputs.
    k : int
        Number of steps taken (slot ``k mod m`` is written next).
    """

    F: Tensor
    G: Tensor
    H: Tensor
    valid: Tensor
    guard: Guard
    k: int = 0


@accelerators.register("anderson")
@dataclass(frozen=True, kw_only=True)
class Anderson:
    """Anderson mixing over the last m iterates (m, lam, beta, safeguard).

    Each step finds weights ``α`` (``Σα = 1``) minimising
    ``‖Σ α_i g_i‖² + lam·s·‖α‖²`` over the stored residuals
    ``g_i = T(z_i) − z_i`` (``s``, the largest ``‖g_i‖²``, makes ``lam``
    scale-free) and returns ``Σ α_i (T(z_i) − (1 − β) g_i)``. An item whose
    small system is singular or non-finite takes the plain step ``T(z)``.
    ``safeguard``: see the module.

    ``lam = 1e-2`` by default: with PnP maps of learned denoisers a weaker
    regularisation extrapolates into regions where the map barely contracts
    (``dncnn-awgn``, SR ×2 at 128²: 1e-4 stalls at a residual of 1e-3 and
    3 dB below plain iteration after 300 iterations; 1e-2 converges to 1e-4 in
    157, plain in 278; BENCHMARKS.md "Accelerators at the defaults").
    """

    m: Annotated[int, Meta("number of past iterates mixed", "[1, inf)")] = 5
    lam: Annotated[float, Meta("regularisation of the mixing weights", "[0, inf)")] = 1e-2
    beta: Annotated[float, Meta("mixing β (1: map outputs only)", "(0, inf)")] = 1.0
    safeguard: Safeguard = 3.0

    def __post_init__(self) -> None:
        if self.m < 1:
            raise SolverError(f"anderson: memory m must be at least 1; got {self.m}")
        non_negative(self.lam, "anderson: regularisation lam", error=SolverError)
        positive(self.beta, "anderson: mixing beta", error=SolverError)
        _check_safeguard("anderson", self.safeguard)

    def init(self, z0: Tensor) -> AndersonState:
        B, n = z0.shape[0], z0[0].numel()
        buffers = z0.new_empty(2, B, self.m, n)
        H = z0.new_zeros(B, self.m, self.m, dtype=torch.float64)
        valid = torch.zeros(B, self.m, dtype=torch.bool, device=z0.device)
        return AndersonState(F=buffers[0], G=buffers[1], H=H, valid=valid, guard=Guard.start(z0))

    def step(self, z: Tensor, Tz: Tensor, state: AndersonState) -> tuple[Tensor, AndersonState]:
        B = z.shape[0]
        F, G, H, valid = state.F, state.G, state.H, state.valid
        undo, guard = state.guard.check(z, Tz, self.safeguard)
        j, used = state.k % self.m, min(state.k + 1, self.m)
        f = Tz.reshape(B, -1)
        g = f - z.reshape(B, -1)
        F[:, j] = f
        G[:, j] = g
        valid[:, j] = True
        valid[undo] = False  # an undone item starts its history again from the best point
        row = torch.bmm(G[:, :used], g.unsqueeze(-1)).squeeze(-1).double()  # (B, used)
        H[:, j, :used] = row
        H[:, :used, j] = row
        keep = valid[:, :used].double()  # slots of this item's current history
        pair = keep[:, :, None] * keep[:, None, :]
        gram = H[:, :used, :used] * pair
        scale = gram.diagonal(dim1=1, dim2=2).amax(-1)
        eye = torch.eye(used, dtype=gram.dtype, device=gram.device)
        # slots outside the history: an identity row and a zero right-hand side, so α = 0
        system = gram + (self.lam * scale)[:, None, None] * eye + (1 - keep)[:, :, None] * eye
        sol, info = torch.linalg.solve_ex(system, keep.unsqueeze(-1))
        alpha = (sol / sol.sum(1, keepdim=True)).squeeze(-1)
        bad = (info != 0) | ~torch.isfinite(alpha).all(1) | ~valid[:, j]
        plain = (torch.arange(used, device=alpha.device) == j).to(alpha.dtype)
        alpha = torch.where(bad[:, None], plain, alpha).to(f.dtype).unsqueeze(1)  # (B, 1, used)
        z_next = torch.bmm(alpha, F[:, :used]).squeeze(1)
        if self.beta != 1.0:
            z_next = z_next - (1.0 - self.beta) * torch.bmm(alpha, G[:, :used]).squeeze(1)
        z_next = torch.where(undo[:, None], guard.best_Tz.reshape(B, -1), z_next)
        return z_next.view_as(z), dataclasses.replace(state, guard=guard, k=state.k + 1)
