"""The deep-equilibrium layer: a fixed point found without a graph, and a chosen backward rule.

For a map ``T_θ`` with fixed point ``z* = T_θ(z*)`` and a loss ``ℓ(z*)``,

    ∂ℓ/∂θ = gᵀ ∂T_θ/∂θ (z*),   with   g = Jᵀ g + ∂ℓ/∂z*,   J = ∂T_θ/∂z (z*)

(implicit function theorem, eq. (9) of the first seed paper). The rules:

- :class:`Implicit` solves for ``g`` by fixed-point iteration with any
  :class:`Accelerator` (one VJP with respect to ``z`` per iteration), then
  takes one VJP with respect to θ;
- :class:`JacobianFree` uses ``g = ∂ℓ/∂z*`` (one differentiable application
  of ``T`` at the detached fixed point, Fung et al.; the second seed paper);
- :class:`Unrolled` keeps the graph of every forward iteration (memory grows
  with the iteration count; the reference the other two are checked against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

from deq_explorer.fixedpoint.base import Accelerator, FixedPointMap, Status, StopRule
from deq_explorer.fixedpoint.core import Residual, fixed_point, relative_residual

FORWARD_RULE = StopRule(max_iter=100, tol=1e-4)
BACKWARD_RULE = StopRule(max_iter=100, tol=1e-6)

__all__ = ["DEQ", "Backward", "DEQStats", "Forward", "Implicit", "JacobianFree", "Unrolled"]


@dataclass(frozen=True, kw_only=True)
class Forward:
    """How the fixed point is found (no graph kept, except under :class:`Unrolled`).

    Attributes
    ----------
    accelerator : Accelerator or None
        Step rule of the forward iteration (``None``: plain iteration).
    rule : StopRule
        Iteration budget, tolerance and divergence bound.
    residual : callable
        ``(z, T(z)) -> (B,)``; its largest item is compared with ``rule.tol``.
    """

    accelerator: Accelerator | None = None
    rule: StopRule = FORWARD_RULE
    residual: Residual = relative_residual


@dataclass(frozen=True, kw_only=True)
class Implicit:
    """Implicit differentiation: solve ``g = Jᵀg + ∂ℓ/∂z*`` by accelerated iteration.

    Attributes
    ----------
    accelerator : Accelerator or None
        Step rule applied to ``g`` (the same objects as the forward pass).
    rule : StopRule
        Budget and tolerance (relative residual) of the backward solve.
    """

    accelerator: Accelerator | None = None
    rule: StopRule = BACKWARD_RULE


@dataclass(frozen=True)
class JacobianFree:
    """Jacobian-free backprop: differentiate one application of ``T`` at ``z*.detach()``."""


@dataclass(frozen=True)
class Unrolled:
    """Backprop through every forward iteration (graph and memory grow with iterations)."""


Backward = Union[Implicit, JacobianFree, Unrolled]  # noqa: UP007 - runtime isinstance target


@dataclass
class DEQStats:
    """Iteration counts of one DEQ call; the backward fields fill in during ``backward()``.

    Attributes
    ----------
    forward_iters, forward_residual, forward_status
        Outcome of the forward solve.
    backward_iters : int
        Iterations of the implicit backward solve (0 for JFB and unrolled, or
        before ``backward()`` ran).
    backward_residual : float
        Final relative residual of the backward solve (NaN when none ran).
    backward_status : Status or None
        Outcome of the backward solve (``None`` when none ran).
    """

    forward_iters: int
    forward_residual: float
    forward_status: Status
    backward_iters: int = 0
    backward_residual: float = math.nan
    backward_status: Status | None = None


@dataclass(frozen=True, kw_only=True)
class DEQ:
    """A fixed-point layer ``z* = T_θ(z*)`` with a chosen backward rule.

    The parameters θ are whatever ``fp_map.T`` closes over that requires
    grad (the prior's ``module``, a learnable β ...).

    Examples
    --------
    >>> deq = DEQ(forward=Forward(accelerator=anderson), backward=Implicit())
    >>> z, stats = deq(fp_map)
    >>> loss = 0.5 * (fp_map.image(z) - x_true).pow(2).sum()
    >>> loss.backward()              # stats.backward_iters is now set
    """

    forward: Forward = Forward()
    backward: Backward = Implicit()

    def __post_init__(self) -> None:
        if not isinstance(self.backward, (Implicit, JacobianFree, Unrolled)):
            raise TypeError(
                f"backward must be Implicit(...), JacobianFree() or Unrolled(), "
                f"got {self.backward!r}"
            )

    def __call__(
        self,
        fp_map: FixedPointMap,
        *,
        stop=None,
    ) -> tuple[Tensor, DEQStats]:
        """Solve for the fixed point of ``fp_map.T`` from ``fp_map.z0``.

        Returns
        -------
        z : Tensor
            The equilibrium state (same shape as ``fp_map.z0``), attached to
            the graph according to the backward rule when grad is enabled;
            read the image with ``fp_map.image(z)``.
        stats : DEQStats
            Iteration counts (backward ones fill in during ``backward()``).
        """
        T, fw = fp_map.T, self.forward
        if isinstance(self.backward, Unrolled) and torch.is_grad_enabled():
            res = fixed_point(
                T, fp_map.z0, accelerator=fw.accelerator, rule=fw.rule,
                residual=fw.residual, stop=stop,
            )  # fmt: skip
            return res.z, DEQStats(res.iterations, res.residual, res.status)
        with torch.no_grad():
            res = fixed_point(
                T, fp_map.z0.detach(), accelerator=fw.accelerator, rule=fw.rule,
                residual=fw.residual, stop=stop,
            )  # fmt: skip
        stats = DEQStats(res.iterations, res.residual, res.status)
        if not torch.is_grad_enabled():
            return res.z, stats
        z_star = res.z.detach().requires_grad_()
        z = T(z_star)  # one differentiable application: value ≈ z*, graph through θ
        if isinstance(self.backward, Implicit) and z.requires_grad:
            z.register_hook(_implicit_hook(z, z_star, self.backward, stats))
        return z, stats


def _implicit_hook(z: Tensor, z_star: Tensor, rule: Implicit, stats: DEQStats):
    """Gradient hook replacing ``g₀`` by the solution of ``g = Jᵀg + g₀``."""

    inside = [False]  # the VJPs below send gradients through ``z`` and so through this hook

    def hook(g0: Tensor) -> Tensor | None:
        if inside[0]:
            return None  # a VJP of the backward solve: pass through unchanged

        def f(g: Tensor) -> Tensor:
            (vjp,) = torch.autograd.grad(z, z_star, g, retain_graph=True)
            return vjp + g0

        inside[0] = True
        try:
            with torch.no_grad():
                res = fixed_point(f, g0, accelerator=rule.accelerator, rule=rule.rule)
        finally:
            inside[0] = False
        stats.backward_iters += res.iterations
        stats.backward_residual = res.residual
        stats.backward_status = res.status
        return res.z

    return hook
