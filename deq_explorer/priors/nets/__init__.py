"""Network architectures for learned priors, rebuilt by name from plain metadata.

``ARCHITECTURES`` maps a stable name to a class; :func:`build_net` rebuilds a
network from that name and a JSON config (what checkpoints store), so loading
a checkpoint never executes code from the file. Untrained networks are never
registered as priors: training builds them here, and only trained checkpoints
become priors (:mod:`deq_explorer.priors.checkpoint`).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from deq_explorer.priors.nets.dncnn import DnCNN
from deq_explorer.priors.nets.sndncnn import SNConv2d, SNDnCNN
from deq_explorer.priors.nets.srcnn import SRCNN
from deq_explorer.priors.nets.unet import UNetDenoiser

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_CONFIGS",
    "SRCNN",
    "DnCNN",
    "SNConv2d",
    "SNDnCNN",
    "UNetDenoiser",
    "architecture_of",
    "build_net",
]

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "dncnn": DnCNN,
    "unet": UNetDenoiser,
    "sn-dncnn": SNDnCNN,
    "srcnn": SRCNN,
}

# Sizes for interactive CPU use: one 256×256 gray forward pass of each denoiser
# stays within about 100 ms on two cores (see the report in the training issue).
DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "dncnn": {"depth": 8, "width": 32, "batch_norm": False},
    "unet": {"widths": [16, 32, 64], "blocks": 1},
    "sn-dncnn": {"depth": 6, "width": 32},
    "srcnn": {"width": 64},
}


def build_net(arch: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build a network by architecture name.

    Parameters
    ----------
    arch : str
        A key of :data:`ARCHITECTURES`.
    config : dict, optional
        Constructor arguments; they override :data:`DEFAULT_CONFIGS` ``[arch]``.

    Raises
    ------
    ValueError
        Unknown architecture, unknown config key, or a bad value.
    """
    if arch not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"unknown network architecture {arch!r}; known: {known}")
    cls = ARCHITECTURES[arch]
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    config = {**DEFAULT_CONFIGS.get(arch, {}), **(config or {})}
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ValueError(f"{arch!r} has no option {names}; options: {', '.join(accepted)}")
    try:
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"bad config for {arch!r}: {exc}") from None


def architecture_of(module: nn.Module) -> str:
    """The :data:`ARCHITECTURES` name of ``module``'s class."""
    for name, cls in ARCHITECTURES.items():
        if type(module) is cls:
            return name
    known = ", ".join(c.__name__ for c in ARCHITECTURES.values())
    raise ValueError(
        f"{type(module).__name__} is not a known architecture ({known}); "
        "add it to deq_explorer.priors.nets.ARCHITECTURES to checkpoint it"
    )
