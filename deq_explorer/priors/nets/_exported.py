"""The calling convention of an exported denoiser: ``D(image, sigma)`` with σ as a tensor.

This module imports torch only: :mod:`deq_explorer.export` copies its source,
with the network's, into the architecture file of a BioImage Model Zoo package.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FixedSigma", "SigmaInput"]


class SigmaInput(nn.Module):
    """A denoiser whose noise level is a second input tensor of shape ``(B, 1)``.

    Parameters
    ----------
    net : nn.Module
        A network ``net(x, sigma)`` taking ``sigma`` as a float or a ``(B,)`` tensor.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor, sigma: Tensor) -> Tensor:
        """Denoise ``image`` ``(B, C, H, W)`` at the levels ``sigma`` ``(B, 1)``, [0, 1] scale."""
        return self.net(image, sigma.reshape(-1))


class FixedSigma(nn.Module):
    """A denoiser ``x ↦ net(x, σ)`` with its noise level fixed (a buffer, saved with it).

    Parameters
    ----------
    net : nn.Module
        A network ``net(x, sigma)``.
    sigma : float
        The noise level, on the [0, 1] intensity scale.
    """

    def __init__(self, net: nn.Module, sigma: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def forward(self, image: Tensor) -> Tensor:
        """Denoise ``image`` ``(B, C, H, W)`` at the fixed level."""
        return self.net(image, self.sigma)
