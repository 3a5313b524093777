"""Two-variable ADMM solvers: PnP-ADMM and the MCNet implicit layer.

Their state stacks two images along the channel axis, ``z = (a, b)`` of shape
``(B, 2C, H, W)``; the first half is the image the map reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
from torch import Tensor

from deq_explorer.checks import non_negative, positive
from deq_explorer.errors import SolverError
from deq_explorer.fixedpoint._checks import start
from deq_explorer.fixedpoint.base import FixedPointMap
from deq_explorer.operators.base import LinearOperator
from deq_explorer.priors.base import Prior
from deq_explorer.registry import Meta, solvers
from deq_explorer.scale import Scale

__all__ = ["mcnet_admm", "mcnet_layer", "pnp_admm"]


def _stacked(
    first: Tensor,
    channels: int,
    op: LinearOperator,
    y: Tensor,
    T: Callable[[Tensor], Tensor],
    name: str,
) -> FixedPointMap:
    """The map for a state ``(first, 0)`` whose image is the first ``channels`` channels."""
    z0 = torch.cat([first, torch.zeros_like(first)], dim=1)
    return FixedPointMap(T=T, z0=z0, image=lambda z: z[:, :channels], op=op, y=y, name=name)


@solvers.register("pnp-admm")
def pnp_admm(
    op: LinearOperator,
    prior: Prior,
    y: Tensor,
    w: Tensor | None = None,
    *,
    gamma: Annotated[float, Meta("penalty / step γ", "(0, inf)")] = 1.0,
) -> FixedPointMap:
    """PnP-ADMM on the state (v, u): x = prox_γg(v − u), v ← prox_γh(x + u), u ← u + x − v (gamma).

    ``prox_γh`` is ``prior.prox(·, γ)`` (for a denoiser prior, the denoiser).
    The reported image is ``v``.

    Parameters
    ----------
    op, prior, y
        Operator, prior and measurement ``(B, *op.y_shape)``.
    w : Tensor, optional
        Starting ``v`` ``(B, C, H, W)``; default ``op.init(y)``; ``u`` starts at 0.
    gamma : float
        Penalty / step γ > 0.
    """
    positive(gamma, "pnp-admm: option gamma", error=SolverError)
    C = op.x_shape[0]

    def T(z: Tensor) -> Tensor:
        v, u = z[:, :C], z[:, C:]
        x_u = op.prox_data(v - u, y, gamma) + u  # x + u
        v_next = prior.prox(x_u, gamma)
        out = torch.empty_like(z)
        out[:, :C] = v_next
        torch.sub(x_u, v_next, out=out[:, C:])  # u + x − v_next
        return out

    return _stacked(start(op, y, w, "pnp-admm"), C, op, y, T, "pnp-admm")


def mcnet_problem_defaults(scale: Scale) -> dict[str, float]:
    """MCNet's ε: the expected noise norm ``σ√m``, so the constraint keeps what the noise
    allows (ε = 0, exact consistency, amplifies noise where ``A`` is ill-conditioned)."""
    return {"eps": scale.noise_norm}


@solvers.register(
    "mcnet-admm", metadata={"takes_start": True,  # w: the backbone output
                            "problem_defaults": mcnet_problem_defaults},
)  # fmt: skip
def mcnet_admm(
    op: LinearOperator,
    prior: Prior,
    y: Tensor,
    w: Tensor | None = None,
    *,
    eps: Annotated[float, Meta("radius ε of the consistency set ‖Ax − y‖ ≤ ε", "[0, inf)")] = 0.0,
    beta: Annotated[float, Meta("weight β of the pull towards the start w", "(0, inf)")] = 1.0,
    rho: Annotated[float, Meta("augmented-Lagrangian parameter ρ", "(0, inf)")] = 1.0,
) -> FixedPointMap:
    """MCNet ADMM layer on (x, λ), constrained to ‖Ax − y‖ ≤ ε (eps, beta, rho).

    Solves ``min_{x ∈ S} f(x) + (β/2)‖x − w‖²`` with ``S = {x : ‖Ax − y‖ ≤ ε}``
    and ``prox_f`` replaced by the prior's denoiser ``R`` (third seed paper)::

        u  = R(x + λ)
        x' = Π_S[(β w + ρ(u − λ)) / (β + ρ)]
        λ' = λ + x' − u

    Every reported ``x`` lies in ``S`` (for ε = 0 it reproduces ``y``).

    Parameters
    ----------
    op, prior, y
        Operator, prior and measurement ``(B, *op.y_shape)``.
    w : Tensor, optional
        Backbone output ``(B, C, H, W)`` (any image, e.g. a bicubic upsampling);
        default ``op.init(y)``. ``x`` starts at ``w``, ``λ`` at 0.
    eps : float
        Radius ε ≥ 0 of the consistency set.
    beta : float
        Weight β > 0 of the pull towards ``w``.
    rho : float
        Augmented-Lagrangian parameter ρ > 0.
    """
    positive(beta, "mcnet-admm: option beta", error=SolverError)
    positive(rho, "mcnet-admm: option rho", error=SolverError)
    non_negative(eps, "mcnet-admm: option eps", error=SolverError)
    return mcnet_layer(op, prior, y, start(op, y, w, "mcnet-admm"), beta=beta, rho=rho, eps=eps)


def mcnet_layer(
    op: LinearOperator,
    prior: Prior,
    y: Tensor,
    w: Tensor,
    *,
    beta: float | Tensor,
    rho: float,
    eps: float,
) -> FixedPointMap:
    """The MCNet map behind :func:`mcnet_admm`, unchecked; ``beta`` may be a tensor to learn.

    ``w`` is the backbone output ``(B, C, H, W)``; the state is ``(x, λ)``, starting at ``(w, 0)``.
    """
    C = op.x_shape[0]
    pull, keep = beta / (beta + rho) * w, rho / (beta + rho)

    def T(z: Tensor) -> Tensor:
        x, lam = z[:, :C], z[:, C:]
        u = prior.denoise(x + lam)
        x_next = op.project(pull + keep * (u - lam), y, eps)
        return torch.cat([x_next, lam + x_next - u], dim=1)

    return _stacked(w, C, op, y, T, "mcnet-admm")
