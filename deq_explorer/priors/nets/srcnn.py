"""An SRCNN-like super-resolution backbone: bicubic upsampling, then three convolutions."""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from deq_explorer.checks import integer
from deq_explorer.errors import PriorError

__all__ = ["SRCNN"]


class SRCNN(nn.Module):
    """SRCNN (Dong et al., 2014) with the 9-5-5 layout.

    The low-resolution input is upsampled by ``scale`` (bicubic), then
    ``conv9×9 → ReLU → conv5×5 → ReLU → conv5×5``. With ``residual`` the
    convolutions predict a correction to the bicubic image.

    Parameters
    ----------
    channels : int
        Image channels.
    scale : int
        Upsampling factor.
    width : int
        Channels of the first hidden layer (the second has half as many).
    residual : bool
        Add the bicubic image to the network's output.
    """

    role: ClassVar[str] = "backbone"

    def __init__(
        self, channels: int = 1, scale: int = 2, width: int = 64, residual: bool = True
    ) -> None:
        super().__init__()
        self.channels = integer(channels, "channels", error=PriorError)
        self.scale = integer(scale, "scale", error=PriorError)
        self.width = integer(width, "width", 2, error=PriorError)
        self.residual = bool(residual)
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 9, padding=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width // 2, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, channels, 5, padding=2),
        )

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready), enough to rebuild the network."""
        return {
            "channels": self.channels,
            "scale": self.scale,
            "width": self.width,
            "residual": self.residual,
        }

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve ``x`` of shape ``(B, C, h, w)`` to ``(B, C, scale·h, scale·w)``."""
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        out = self.body(up)
        return up + out if self.residual else out
