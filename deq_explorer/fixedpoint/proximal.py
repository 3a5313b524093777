"""Single-variable solvers: PnP-PGM, SD-RED and forward-backward with a denoiser.

The state is the image itself, ``z = x`` of shape ``(B, C, H, W)``, starting
at ``w`` when given and at ``op.init(y)`` otherwise. ``g(x) = ½‖Ax − y‖²`` is
the data term, ``D`` the prior's denoiser.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from deq_explorer.checks import positive
from deq_explorer.errors import SolverError
from deq_explorer.fixedpoint._checks import start
from deq_explorer.fixedpoint.base import FixedPointMap
from deq_explorer.operators.base import LinearOperator
from deq_explorer.priors.base import Prior
from deq_explorer.registry import Meta, solvers

__all__ = ["fb", "pnp_pgm", "red_sd"]


Step = Annotated[float, Meta("step size γ", "(0, inf)")]
Weight = Annotated[float, Meta("prior weight τ", "(0, inf)")]


def _image(z: Tensor) -> Tensor:
    return z


@solvers.register("pnp-pgm")
def pnp_pgm(
    op: LinearOperator,
    prior: Prior,
    y: Tensor,
    w: Tensor | None = None,
    *,
    gamma: Step = 1.0,
    tau: Weight = 0.5,
) -> FixedPointMap:
    """PnP proximal gradient: x ← prox_γg(x − γτ(x − D(x))) (gamma, tau).

    The form of the first seed paper: a RED step on the prior followed by the
    closed-form data prox. Fixed points solve ``∇g(x) + τ(x − D(x)) = 0``, so
    ``tau`` weighs the prior and ``gamma`` is the step; ``γτ ≤ 1`` keeps the
    map averaged for a firmly non-expansive ``D`` (TV).

    Parameters
    ----------
    op, prior, y
        Operator, prior and measurement ``(B, *op.y_shape)``.
    w : Tensor, optional
        Starting image ``(B, C, H, W)``; default ``op.init(y)``.
    gamma, tau : float
        Step size γ > 0 and prior weight τ > 0.
    """
    positive(gamma, "pnp-pgm: option gamma", error=SolverError)
    positive(tau, "pnp-pgm: option tau", error=SolverError)
    step = gamma * tau

    def T(x: Tensor) -> Tensor:
        return op.prox_data(torch.add(x, prior.red_grad(x), alpha=-step), y, gamma)

    return FixedPointMap(
        T=T, z0=start(op, y, w, "pnp-pgm"), image=_image, op=op, y=y, name="pnp-pgm"
    )


@solvers.register("red-sd")
def red_sd(
    op: LinearOperator,
    prior: Prior,
    y: Tensor,
    w: Tensor | None = None,
    *,
    gamma: Step = 0.6,
    tau: Weight = 0.5,
) -> FixedPointMap:
    """Steepest-descent RED: x ← x − γ(∇g(x) + τ(x − D(x))) (gamma, tau).

    Same fixed points as :func:`pnp_pgm`. With ``‖A‖ ≤ 1`` and a firmly
    non-expansive ``D`` (TV) the step is stable for ``γ(1 + τ) < 2``, and
    with Nesterov momentum for ``γ(1 + τ) ≤ 1`` (the default 0.6·1.5 = 0.9).

    Parameters
    ----------
    op, prior, y
        Operator, prior and measurement ``(B, *op.y_shape)``.
    w : Tensor, optional
        Starting image ``(B, C, H, W)``; default ``op.init(y)``.
    gamma, tau : float
        Step size γ > 0 and prior weight τ > 0.
    """
    positive(gamma, "red-sd: option gamma", error=SolverError)
    positive(tau, "red-sd: option tau", error=SolverError)

    def T(x: Tensor) -> Tensor:
        g = torch.add(op.grad_data(x, y), prior.red_grad(x), alpha=tau)
        return torch.add(x, g, alpha=-gamma)

    return FixedPointMap(T=T, z0=start(op, y, w, "red-sd"), image=_image, op=op, y=y, name="red-sd")


@solvers.register("fb")
def fb(
    op: LinearOperator,
    prior: Prior,
    y: Tensor,
    w: Tensor | None = None,
    *,
    eta: Annotated[float, Meta("gradient step η (stable for η < 2/‖A‖²)", "(0, inf)")] = 0.49,
    sigma: Annotated[float, Meta("the denoiser's noise input; negative: η·σ of the prior")] = -1.0,
) -> FixedPointMap:
    """Forward-backward with a denoiser: x ← D_σ(x − η∇g(x)) (eta, sigma).

    The map of multi-task DEQ training (second seed paper: η = 0.49 and the
    denoiser's noise input η·σ_noise). By default the noise input is
    ``η·prior.sigma``; for TV (whose noise level is its weight) FB is then the
    proximal gradient method for ``g + weight·TV``, the problem PnP-ADMM with
    ``gamma=1`` solves.

    Parameters
    ----------
    op, prior, y
        Operator, prior and measurement ``(B, *op.y_shape)``.
    w : Tensor, optional
        Starting image ``(B, C, H, W)``; default ``op.init(y)``.
    eta : float
        Gradient step η > 0 (stable for η < 2/‖A‖²).
    sigma : float
        Noise level given to the denoiser as is; a negative value means
        ``η·prior.sigma``.
    """
    positive(eta, "fb: option eta", error=SolverError)
    level = eta * prior.sigma if sigma < 0 else float(sigma)

    def T(x: Tensor) -> Tensor:
        return prior.denoise(torch.add(x, op.grad_data(x, y), alpha=-eta), level)

    return FixedPointMap(T=T, z0=start(op, y, w, "fb"), image=_image, op=op, y=y, name="fb")
