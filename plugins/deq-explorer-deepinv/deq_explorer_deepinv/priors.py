"""deepinv's denoisers as DEQ Explorer priors, with weights from a local file.

Nothing is downloaded: ``weights=""`` builds the network with deepinv's random
(Kaiming) initialisation and warns that it is untrained; ``weights=PATH`` loads
a state dict saved with ``torch.save(net.state_dict(), PATH)`` for exactly the
architecture the options describe (deepinv's ``pretrained=PATH``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from deepinv.models import DnCNN, DRUNet
from torch import nn

from deq_explorer.priors.base import DenoiserPrior

__all__ = ["dinv_dncnn", "dinv_drunet", "load_weights"]


def load_weights(weights: str, name: str) -> str | None:
    """deepinv's ``pretrained`` argument for a local ``weights`` path (``None`` when empty).

    Raises
    ------
    FileNotFoundError
        If ``weights`` names no file (nothing is ever downloaded).
    """
    if not weights:
        warnings.warn(
            f"{name}: no weights given, the network is randomly initialised (untrained); "
            f"pass weights=PATH to a local state dict",
            UserWarning,
            stacklevel=3,
        )
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{name}: weights file {str(path)!r} not found; give the path of a local state dict "
            "(saved with torch.save(net.state_dict(), path)); nothing is downloaded"
        )
    return str(path)


def _prior(net: nn.Module, sigma: float, name: str, device, dtype) -> DenoiserPrior:
    if not sigma >= 0:
        raise ValueError(f"{name}: noise level sigma must be >= 0, got {sigma}")
    net = net.to(device=device, dtype=dtype).eval()
    return DenoiserPrior(net, sigma=sigma, name=name)


def dinv_dncnn(
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    weights: str = "",
    channels: int = 1,
    depth: int = 20,
    width: int = 64,
    sigma: float = 0.05,
) -> DenoiserPrior:
    """deepinv DnCNN (weights=PATH, channels, depth, width, sigma); random init without weights."""
    pretrained = load_weights(weights, "dinv-dncnn")
    net = DnCNN(
        in_channels=channels,
        out_channels=channels,
        depth=depth,
        nf=width,
        pretrained=pretrained,
        device="cpu",
    )
    return _prior(net, sigma, "dinv-dncnn", device, dtype)


def dinv_drunet(
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    weights: str = "",
    channels: int = 1,
    width: int = 64,
    blocks: int = 4,
    sigma: float = 0.05,
) -> DenoiserPrior:
    """deepinv DRUNet with a noise-level map (weights=PATH, channels, width, blocks, sigma)."""
    pretrained = load_weights(weights, "dinv-drunet")
    net = DRUNet(
        in_channels=channels,
        out_channels=channels,
        nc=(width, 2 * width, 4 * width, 8 * width),
        nb=blocks,
        pretrained=pretrained,
        device="cpu",
    )
    return _prior(net, sigma, "dinv-drunet", device, dtype)
