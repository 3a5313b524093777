"""The validators every layer shares: numbers that must be positive, ≥ 0 or integral; devices.

Each number check returns the value it accepts and raises ``error`` (a
:class:`~deq_explorer.errors.DEQExplorerError` class: the caller's own, e.g.
``ConfigError``) with a message that starts with ``what``. A bool is not a number here.
"""

from __future__ import annotations

import math
import numbers
from typing import TypeVar

import torch

from deq_explorer.errors import DEQExplorerError, DeviceError

__all__ = ["integer", "non_negative", "positive", "resolve_device"]

N = TypeVar("N", bound=float)


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive(value: N, what: str, *, error: type[DEQExplorerError] = DEQExplorerError) -> N:
    """``value`` if it is a finite number > 0.

    Parameters
    ----------
    value : float
        The number to check.
    what : str
        How the message names it, e.g. ``"pnp-pgm: option gamma"``.
    error : type
        The error to raise.

    Raises
    ------
    DEQExplorerError
        ``error("<what> must be a positive number; got <value>")``.
    """
    if not (_real(value) and math.isfinite(value) and value > 0):
        raise error(f"{what} must be a positive number; got {value!r}")
    return value


def non_negative(value: N, what: str, *, error: type[DEQExplorerError] = DEQExplorerError) -> N:
    """``value`` if it is a finite number ≥ 0; else ``error("<what> must be ≥ 0; got …")``."""
    if not (_real(value) and math.isfinite(value) and value >= 0):
        raise error(f"{what} must be ≥ 0; got {value!r}")
    return value


def integer(
    value: int, what: str, minimum: int = 1, *, error: type[DEQExplorerError] = DEQExplorerError
) -> int:
    """``value`` as an int if it is an integer ≥ ``minimum``; else ``error`` naming ``what``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise error(f"{what} must be an integer ≥ {minimum}; got {value!r}")
    return int(value)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device a ``--device``-style setting names.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None): CUDA where it is available, else the CPU; otherwise any
        torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...).

    Raises
    ------
    DeviceError
        The name is not a device, or it asks for CUDA where there is none.
    """
    name = "auto" if device is None else str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(
            "CUDA was requested but is not available here (no CUDA device or a CPU-only torch); "
            "use device 'cpu' or 'auto' (--device cpu on the CLI)"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
