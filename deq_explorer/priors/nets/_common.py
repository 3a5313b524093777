"""Small pieces the networks share: the noise-level map."""

from __future__ import annotations

import torch
from torch import Tensor

from deq_explorer.errors import PriorError

__all__ = ["noise_map"]


def noise_map(x: Tensor, sigma: float | Tensor) -> Tensor:
    """A constant noise-level channel for ``x``.

    Parameters
    ----------
    x : Tensor
        Images, shape ``(B, C, H, W)``.
    sigma : float or Tensor
        One level for the batch (float or 0-d tensor) or one per image, shape ``(B,)``.

    Returns
    -------
    Tensor
        Shape ``(B, 1, H, W)``, same device and dtype as ``x``.
    """
    b, _, h, w = x.shape
    s = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
    if s.dim() == 0:
        return s.expand(b, 1, h, w)
    if s.shape != (b,):
        raise PriorError(
            f"sigma must be a float or a tensor of shape (B,) = ({b},); got shape "
            f"{tuple(s.shape)}: pass one noise level per image in the batch"
        )
    return s.view(b, 1, 1, 1).expand(b, 1, h, w)
