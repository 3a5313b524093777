"""Training: AWGN pretraining, DEQ fine-tuning (implicit or Jacobian-free), mismatched,
multi-task and MCNet modes, as one loop that yields typed events; DDP under ``torchrun``.

The modes are a registry (:data:`~deq_explorer.training.modes.modes`) that packs extend.
"""

from typing import Any

from deq_explorer.training.config import (
    ConfigError,
    MCNetConfig,
    MultiTaskConfig,
    TrainConfig,
)
from deq_explorer.training.data import ImageData, load_images
from deq_explorer.training.events import (
    CheckpointEvent,
    DoneEvent,
    FailedEvent,
    StepEvent,
    TrainEvent,
    ValEvent,
)
from deq_explorer.training.loop import best_path, check_writable, train
from deq_explorer.training.modes import mode, modes

__all__ = [
    "CheckpointEvent",
    "ConfigError",
    "DoneEvent",
    "FailedEvent",
    "ImageData",
    "MCNetConfig",
    "MultiTaskConfig",
    "StepEvent",
    "TrainConfig",
    "TrainEvent",
    "ValEvent",
    "best_path",
    "check_writable",
    "load_images",
    "mode",
    "modes",
    "train",
]


def __getattr__(name: str) -> Any:
    if name == "MODES":  # deprecated alias, computed from the registry
        from deq_explorer.training import config

        return config.MODES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
