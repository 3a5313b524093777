"""Typed events the training loop yields; progress bars, plots and logs consume them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

__all__ = ["CheckpointEvent", "DoneEvent", "FailedEvent", "StepEvent", "TrainEvent", "ValEvent"]


@dataclass(frozen=True)
class StepEvent:
    """One optimizer step (``step`` is 1-based; ``loss`` NaN if every draw was abandoned).

    ``fwd_iters``/``bwd_iters`` sum the forward and implicit-backward
    iterations of the step's DEQ solves (0 in AWGN mode and for JFB backward).
    """

    step: int
    loss: float
    lr: float
    fwd_iters: int
    bwd_iters: int
    seconds: float


@dataclass(frozen=True)
class ValEvent:
    """Validation PSNR (dB) and SSIM on the held-out images after ``step`` steps."""

    step: int
    psnr: float
    ssim: float


@dataclass(frozen=True)
class CheckpointEvent:
    """A checkpoint (the last state, or the best weights) was written after ``step`` steps."""

    path: str
    step: int


@dataclass(frozen=True)
class DoneEvent:
    """Training ended: ``status`` is ``"finished"``, ``"stopped"`` or ``"diverged"``.

    ``path`` is the checkpoint (``""`` if none was written); on ``"diverged"`` it is the last
    healthy one, untouched, and ``message`` says what diverged and what to change.
    """

    status: str
    path: str
    step: int
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class FailedEvent:
    """Training failed; ``message`` says why (and what to change)."""

    message: str


TrainEvent = Union[StepEvent, ValEvent, CheckpointEvent, DoneEvent, FailedEvent]  # noqa: UP007
