"""Records shared by solvers, accelerators and the iteration loop."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from deq_explorer.operators.base import LinearOperator

__all__ = ["Accelerator", "Criterion", "FixedPointMap", "Iterate", "Solution", "Status", "StopRule"]


class Status(str, enum.Enum):
    """Where an iteration stands."""

    RUNNING = "running"
    CONVERGED = "converged"
    MAX_ITER = "max_iter"
    DIVERGED = "diverged"
    STALLED = "stalled"
    STOPPED = "stopped"


class Criterion(str, enum.Enum):
    """What :class:`StopRule`'s ``tol`` is compared with."""

    RESIDUAL = "residual"  # the fixed-point residual ‖T(z) − z‖/‖z‖
    CHANGE = "change"  # the iterate change ‖z_next − z‖/‖z‖ (deepinv's; = residual if plain)


@dataclass(frozen=True)
class FixedPointMap:
    """A solver written as ``z ← T(z)``.

    Attributes
    ----------
    T : callable
        The map on the state ``z`` (a tensor ``(B, k·C, H, W)``; solvers with
        several variables stack them along the channel axis).
    z0 : Tensor
        Starting state.
    image : callable
        Reads the image ``(B, C, H, W)`` out of a state.
    op : LinearOperator
        Operator the map solves with (for data consistency).
    y : Tensor
        Measurement.
    name : str
        Solver name, for labels.
    """

    T: Callable[[Tensor], Tensor]
    z0: Tensor
    image: Callable[[Tensor], Tensor]
    op: LinearOperator
    y: Tensor
    name: str = ""


class Accelerator(Protocol):
    """Hyper-parameters (a frozen dataclass) plus a pure step rule.

    ``state = acc.init(z0)``; each iteration the loop evaluates ``Tz = T(z)``
    and calls ``z_next, state = acc.step(z, Tz, state)``.
    """

    def init(self, z0: Tensor) -> Any: ...

    def step(self, z: Tensor, Tz: Tensor, state: Any) -> tuple[Tensor, Any]: ...


@dataclass(frozen=True)
class StopRule:
    """When :func:`iterate` stops.

    Attributes
    ----------
    max_iter : int
        Iteration budget.
    tol : float
        Stop when the criterion falls below it (0 = never).
    diverge_at : float
        Largest magnitude allowed in the iterate before it counts as diverged.
    criterion : Criterion
        The relative fixed-point residual (default) or the relative iterate change.
    patience : int
        With ``tol > 0``: end as STALLED after this many iterations in which the
        smallest residual so far did not fall by 1 % (0 = never).
    """

    max_iter: int = 100
    tol: float = 1e-4
    diverge_at: float = 1e10
    criterion: Criterion = Criterion.RESIDUAL
    patience: int = 0


@dataclass(frozen=True)
class Iterate:
    """What the loop reports after iteration ``k`` (1-based).

    ``x`` is the image after the iteration, ``change`` is ``|x_k − x_{k−1}|``
    per pixel, ``residual`` the relative fixed-point residual, ``consistency``
    ``‖Ax − y‖/‖y‖`` (batch mean), ``psnr``/``ssim`` against the reference
    when one is given (else ``None``), ``seconds`` elapsed since the start.
    ``consistency``, ``psnr`` and ``ssim`` are ``None`` on iterations the
    loop's ``metrics_every`` skips.
    ``status`` is RUNNING except on the last iterate a loop yields.
    """

    k: int
    x: Tensor
    change: Tensor
    residual: float
    consistency: float | None
    psnr: float | None
    ssim: float | None
    seconds: float
    status: Status = Status.RUNNING


@dataclass(frozen=True)
class Solution:
    """The outcome of :func:`solve`: final image, status and the history of metrics.

    ``rate`` is the observed contraction factor: the geometric mean of the residual's
    ratio ``r_k / r_{k−1}`` over the last iterations (:func:`contraction_rate`), about
    the map's local contraction factor for plain iteration; at or above 1 the solve is
    not converging. None when too few iterations ran.
    """

    x: Tensor
    status: Status
    iterations: int
    seconds: float
    history: dict[str, list[float | None]] = field(default_factory=dict)
    rate: float | None = None
