"""A small DRUNet-style U-Net with a noise-level map as extra input channel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deq_explorer.checks import integer
from deq_explorer.errors import PriorError
from deq_explorer.priors.nets._common import noise_map

__all__ = ["UNetDenoiser"]


class _ResBlock(nn.Module):
    """``x + conv(ReLU(conv(x)))``, 3×3, no bias, no normalisation."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class UNetDenoiser(nn.Module):
    """DRUNet-style denoiser (Zhang et al., 2021), reduced for CPU use.

    The input is the image with a constant noise-level channel ``σ``. Each
    scale has ``blocks`` residual blocks; scales are linked by stride-2
    convolutions down and transposed convolutions up, with additive skips.
    No bias and no batch normalisation anywhere. Inputs whose size is not a
    multiple of ``2**(len(widths) − 1)`` are padded (replicate) and cropped back.

    Parameters
    ----------
    channels : int
        Image channels (1 gray, 3 colour).
    widths : sequence of int
        Feature channels per scale, finest first (2–4 scales).
    blocks : int
        Residual blocks per scale.
    """

    role: ClassVar[str] = "denoiser"

    def __init__(
        self, channels: int = 1, widths: Sequence[int] = (32, 64, 128), blocks: int = 2
    ) -> None:
        super().__init__()
        self.channels = integer(channels, "channels", error=PriorError)
        self.widths = tuple(integer(w, "each of widths", error=PriorError) for w in widths)
        if not 2 <= len(self.widths) <= 4:
            raise PriorError(f"widths must list 2 to 4 scales; got {list(self.widths)}")
        self.blocks = integer(blocks, "blocks", error=PriorError)
        ws = self.widths
        self.head = nn.Conv2d(channels + 1, ws[0], 3, padding=1, bias=False)
        self.down = nn.ModuleList(
            nn.Sequential(
                *(_ResBlock(ws[i]) for _ in range(blocks)),
                nn.Conv2d(ws[i], ws[i + 1], 2, stride=2, bias=False),
            )
            for i in range(len(ws) - 1)
        )
        self.bottom = nn.Sequential(*(_ResBlock(ws[-1]) for _ in range(blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(ws[i + 1], ws[i], 2, stride=2, bias=False),
                *(_ResBlock(ws[i]) for _ in range(blocks)),
            )
            for i in reversed(range(len(ws) - 1))
        )
        self.tail = nn.Conv2d(ws[0], channels, 3, padding=1, bias=False)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready), enough to rebuild the network."""
        return {"channels": self.channels, "widths": list(self.widths), "blocks": self.blocks}

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Denoise ``x`` of shape ``(B, C, H, W)`` at level ``sigma`` (float or ``(B,)``)."""
        h, w = x.shape[-2:]
        m = 2 ** (len(self.widths) - 1)
        pad_h, pad_w = (-h) % m, (-w) % m
        z = torch.cat([x, noise_map(x, sigma)], dim=1)
        if pad_h or pad_w:
            z = F.pad(z, (0, pad_w, 0, pad_h), mode="replicate")
        skips = [self.head(z)]
        for down in self.down:
            skips.append(down(skips[-1]))
        z = self.bottom(skips[-1])
        for up in self.up:
            z = up(z + skips.pop())
        return self.tail(z + skips.pop())[..., :h, :w]
