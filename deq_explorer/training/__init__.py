"""Training: AWGN pretraining, DEQ fine-tuning (implicit or Jacobian-free), mismatched,
multi-task and MCNet modes, as one loop that yields typed events; DDP under ``torchrun``."""

from deq_explorer.training.config import (
    MODES,
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
from deq_explorer.training.loop import best_path, train

__all__ = [
    "MODES",
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
    "load_images",
    "train",
]
