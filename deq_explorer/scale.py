"""The facts of a problem that default settings scale with.

A registry entry may carry ``metadata["problem_defaults"]``: a function of a
:class:`Scale` returning the option values it derives from the problem where a spec
leaves them out (TV's weight, a denoiser's noise input, MCNet's ε). Each rule is
documented beside its entry's code; :func:`deq_explorer.api.problem_defaults` applies
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:  # operators sit above this module
    from deq_explorer.operators.base import LinearOperator

__all__ = ["Scale", "noise_norm", "scale_of"]


@dataclass(frozen=True)
class Scale:
    """What a default may depend on.

    Attributes
    ----------
    noise : float
        AWGN standard deviation σ on the [0, 1] scale.
    denoising : bool
        Whether the operator is the identity.
    sampling : float
        The fraction of the operator's output grid it samples: the kept fraction of a
        mask (inpainting ``1 − p``, MRI its rate), 1 for operators that measure every
        output entry (blur, decimation). The rest is unmeasured: only the prior fills it.
    noise_norm : float
        The expected norm ``‖e‖`` of the noise on one measurement (:func:`noise_norm`).
    """

    noise: float = 0.0
    denoising: bool = False
    sampling: float = 1.0
    noise_norm: float = 0.0


def _measured(op: LinearOperator) -> int:
    """Measured entries of one measurement of ``op``."""
    support = op.support()
    per_channel = math.prod(op.y_shape[-2:]) if support is None else int(support.sum())
    return per_channel * math.prod(op.y_shape[:-2])


def noise_norm(op: LinearOperator, y: Tensor, sigma: float) -> float:
    """Expected ``‖e‖`` of AWGN of std ``sigma`` on one measurement ``y`` ``(1, *y_shape)``.

    Noise falls only on measured entries (``op.support()``); a complex entry
    (``y`` complex) carries noise in both parts.
    """
    return sigma * math.sqrt(_measured(op) * (2 if y.is_complex() else 1))


def scale_of(op: LinearOperator, y: Tensor, noise: float, denoising: bool) -> Scale:
    """The :class:`Scale` of measurement ``y`` of ``op`` with noise level ``noise``."""
    return Scale(
        noise=float(noise),
        denoising=bool(denoising),
        sampling=_measured(op) / math.prod(op.y_shape),
        noise_norm=noise_norm(op, y, noise),
    )
