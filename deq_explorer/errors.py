"""The package's errors: one root, :class:`DEQExplorerError`, and one class per layer.

Every error the package raises on bad input is a :class:`DEQExplorerError`, so a caller
catches them all with one clause; the root subclasses :class:`ValueError`, so code written
against the former ``ValueError`` classes keeps working. Each class is also importable from
the module that raises it (``deq_explorer.api.ProblemError`` ...). This module imports
nothing from the package: it sits below every layer.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DEQExplorerError",
    "DeviceError",
    "ExportError",
    "ImageError",
    "InputError",
    "LayerError",
    "OperatorError",
    "PriorError",
    "ProblemError",
    "RequestError",
    "RunFileError",
    "SolverError",
    "SpecError",
    "VolumeError",
]


class DEQExplorerError(ValueError):
    """Bad input to DEQ Explorer: the root of every error the package raises on purpose."""


class SpecError(DEQExplorerError):
    """A spec string names an unknown entry or sets an option badly."""


class ImageError(DEQExplorerError):
    """An image cannot be used (missing, unreadable, too small, non-finite ...)."""


class VolumeError(DEQExplorerError):
    """A volume file is missing, unreadable or not 3-D, or nibabel is not installed."""


class OperatorError(DEQExplorerError):
    """An operator was asked for something it cannot do (bad shape, parameter ...)."""


class PriorError(DEQExplorerError):
    """A prior or a network was given options or images it cannot use."""


class CheckpointError(DEQExplorerError):
    """A checkpoint is missing, damaged, unsafe, or does not fit its architecture."""


class SolverError(DEQExplorerError):
    """A solver, an accelerator or a stop rule was given options or data it cannot use."""


class ConfigError(DEQExplorerError):
    """A training recipe is inconsistent or names something unknown."""


class ProblemError(DEQExplorerError):
    """A problem cannot be set up or solved as asked (shapes, device, options)."""


class DeviceError(ProblemError):
    """A device is unknown, or CUDA was asked for where there is none."""


class RequestError(ProblemError):
    """A :class:`~deq_explorer.api.Request` field holds a value no solve can use.

    Attributes
    ----------
    field : str
        The field's name (the CLI shows it as its flag).
    reason : str
        What is wrong, e.g. ``"must be a positive integer, got 0"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field, self.reason = field, reason


class LayerError(DEQExplorerError):
    """A napari layer cannot be used as an image (wrong dimensions, type, values)."""


class InputError(DEQExplorerError):
    """Bad command-line input: reported without a traceback, exit code 2."""


class RunFileError(DEQExplorerError):
    """A file is not a saved run (no ``config``, unreadable, or not this format)."""


class ExportError(DEQExplorerError):
    """A prior cannot be exported in the asked format, or the output cannot be written."""
