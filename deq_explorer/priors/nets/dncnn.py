"""DnCNN: a plain stack of 3×3 convolutions trained by residual learning."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from deq_explorer.checks import integer
from deq_explorer.errors import PriorError
from deq_explorer.priors.nets._common import noise_map

__all__ = ["DnCNN"]


class DnCNN(nn.Module):
    """DnCNN denoiser (Zhang et al., 2017), gray or colour.

    ``conv-ReLU``, ``depth − 2`` × ``conv-[BN]-ReLU``, ``conv``. With residual
    learning the body predicts the noise and the output is ``x − body(x)``.

    Parameters
    ----------
    channels : int
        Image channels (1 gray, 3 colour).
    depth : int
        Number of convolutions (≥ 2); the paper uses 17.
    width : int
        Feature channels of the hidden layers.
    batch_norm : bool
        Batch normalisation in the hidden layers (their convolutions then have no bias).
    residual : bool
        Output ``x − body(x)`` (residual learning) instead of ``body(x)``.
    noise_map : bool
        Feed ``sigma`` as an extra constant input channel; otherwise ``sigma`` is ignored.
    """

    role: ClassVar[str] = "denoiser"

    def __init__(
        self,
        channels: int = 1,
        depth: int = 17,
        width: int = 64,
        batch_norm: bool = True,
        residual: bool = True,
        noise_map: bool = False,
    ) -> None:
        super().__init__()
        self.channels = integer(channels, "channels", error=PriorError)
        self.depth = integer(depth, "depth", 2, error=PriorError)
        self.width = integer(width, "width", error=PriorError)
        self.batch_norm = bool(batch_norm)
        self.residual = bool(residual)
        self.noise_map = bool(noise_map)
        c_in = channels + int(self.noise_map)
        layers: list[nn.Module] = [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready), enough to rebuild the network."""
        return {
            "channels": self.channels,
            "depth": self.depth,
            "width": self.width,
            "batch_norm": self.batch_norm,
            "residual": self.residual,
            "noise_map": self.noise_map,
        }

    def forward(self, x: Tensor, sigma: float | Tensor = 0.0) -> Tensor:
        """Denoise ``x`` of shape ``(B, C, H, W)``; ``sigma`` is used only with ``noise_map``."""
        inp = torch.cat([x, noise_map(x, sigma)], dim=1) if self.noise_map else x
        out = self.body(inp)
        return x - out if self.residual else out
