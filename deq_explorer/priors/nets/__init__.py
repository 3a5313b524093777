"""Network architectures for learned priors, rebuilt by name from plain metadata.

:data:`architectures` is the registry of network classes: a checkpoint stores
an architecture's name and its JSON config, and :func:`build_net` rebuilds the
network from those, so loading a checkpoint never executes code from the file.
A pack adds a class with ``architectures.register("name", MyNet)``; the class
takes its config as constructor keywords, returns it from ``config()``, has a
``channels`` attribute and a class attribute ``role`` (``"denoiser"``: a prior;
``"backbone"``: a reconstruction network ``y ↦ x``). An entry's ``metadata["config"]``
holds the sizes :func:`build_net` uses for the keys a config leaves out.
Untrained networks are never registered as priors: training builds them here,
and only trained checkpoints become priors (:mod:`deq_explorer.priors.checkpoint`).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from deq_explorer.errors import PriorError
from deq_explorer.priors.nets.dncnn import DnCNN
from deq_explorer.priors.nets.sndncnn import SNConv2d, SNDnCNN
from deq_explorer.priors.nets.srcnn import SRCNN
from deq_explorer.priors.nets.unet import UNetDenoiser
from deq_explorer.registry import Registry

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_CONFIGS",
    "SRCNN",
    "DnCNN",
    "SNConv2d",
    "SNDnCNN",
    "UNetDenoiser",
    "architecture_of",
    "architectures",
    "build_net",
]

#: the built-in architectures (all of them, packs' too, are in :data:`architectures`)
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

architectures: Registry[nn.Module] = Registry("network architecture")
for _name, _cls in ARCHITECTURES.items():
    architectures.register(
        _name, _cls, metadata={"config": DEFAULT_CONFIGS[_name]}, source="builtin"
    )


def build_net(arch: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build a network by architecture name.

    Parameters
    ----------
    arch : str
        A name in :data:`architectures`.
    config : dict, optional
        Constructor arguments; they override the entry's ``metadata["config"]``.

    Raises
    ------
    SpecError
        Unknown architecture.
    PriorError
        Unknown config key, or a bad value.
    """
    entry = architectures.entry(arch)
    accepted = list(inspect.signature(entry.factory).parameters)
    config = {**entry.metadata.get("config", {}), **(config or {})}
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise PriorError(f"{arch!r} has no option {names}; options: {', '.join(accepted)}")
    try:
        return entry.factory(**config)
    except TypeError as exc:
        raise PriorError(f"bad config for {arch!r}: {exc}") from None


def architecture_of(module: nn.Module) -> str:
    """The :data:`architectures` name of ``module``'s class."""
    for entry in architectures.entries():
        if type(module) is entry.factory:
            return entry.name
    known = ", ".join(e.name for e in architectures.entries())
    raise PriorError(
        f"{type(module).__name__} is not a known architecture ({known}); register its "
        "class in deq_explorer.priors.nets.architectures to checkpoint it"
    )
