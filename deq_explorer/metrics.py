"""Image-quality and data-consistency metrics in torch.

Images are tensors ``(B, C, H, W)`` (``(C, H, W)`` and ``(H, W)`` are read as
one item). The ``batch_*`` functions return one value per item as a ``(B,)``
tensor without leaving the device (the iteration loop uses them to avoid
synchronisations); :func:`psnr`, :func:`ssim` and :func:`consistency` return
the batch mean as a float.

:func:`ssim` is the Gaussian-window SSIM of Wang et al. (2004) and agrees with
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=...)``, averaged over channels.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SSIM_MIN_SIZE",
    "Forward",
    "batch_consistency",
    "batch_psnr",
    "batch_ssim",
    "consistency",
    "psnr",
    "ssim",
]

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)  # scipy.ndimage's radius for truncate=3.5: 5
_K1, _K2 = 0.01, 0.03

#: smallest height/width :func:`ssim` accepts (the 11-tap window)
SSIM_MIN_SIZE = 2 * _SSIM_RADIUS + 1


class Forward(Protocol):
    """What :func:`consistency` needs of an operator (any ``LinearOperator`` has it)."""

    def A(self, x: Tensor) -> Tensor: ...

    def norm(self, y: Tensor) -> Tensor: ...


def _as_batch(x: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(x, Tensor) or not isinstance(ref, Tensor):
        raise TypeError("metrics take torch tensors; convert arrays with torch.as_tensor")
    if x.shape != ref.shape:
        raise ValueError(f"image shape {tuple(x.shape)} differs from reference {tuple(ref.shape)}")
    if x.ndim == 2:
        x, ref = x[None, None], ref[None, None]
    elif x.ndim == 3:
        x, ref = x[None], ref[None]
    elif x.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), (C, H, W) or (H, W); got {tuple(x.shape)}")
    return x, ref


def batch_psnr(x: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB per item, ``10 log10(range² / MSE)``; ``(B,)`` (``inf`` if identical)."""
    x, ref = _as_batch(x, ref)
    err = (x.double() - ref.double()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / err)


def _gaussian_window(device: torch.device) -> Tensor:
    t = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (t / _SSIM_SIGMA) ** 2)
    return g / g.sum()


def batch_ssim(x: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """Gaussian-window SSIM per item, channels averaged; ``(B,)``.

    The 11-tap window (σ = 1.5) is applied without padding: scikit-image crops
    the 5-pixel border where its padding would matter, so the valid part is
    exactly what it averages. Computed in float64.

    Raises
    ------
    ValueError
        If ``H`` or ``W`` is smaller than the 11-pixel window.
    """
    x, ref = _as_batch(x, ref)
    B, C, H, W = x.shape
    size = SSIM_MIN_SIZE
    if H < size or W < size:
        raise ValueError(f"SSIM needs images of at least {size}×{size} pixels; got {H}×{W}")
    x, ref = x.double(), ref.double()
    g = _gaussian_window(x.device)
    stack = torch.stack([x, ref, x * x, ref * ref, x * ref], dim=2).reshape(-1, 1, H, W)
    blur = F.conv2d(F.conv2d(stack, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    ux, uy, uxx, uyy, uxy = blur.reshape(B, C, 5, H - size + 1, W - size + 1).unbind(2)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def batch_consistency(op: Forward, x: Tensor, y: Tensor) -> Tensor:
    """Relative data consistency ``‖Ax − y‖ / ‖y‖`` per item; ``(B,)``."""
    return op.norm(op.A(x) - y) / op.norm(y).clamp_min(torch.finfo(x.dtype).tiny)


def psnr(x: Tensor, ref: Tensor, data_range: float = 1.0) -> float:
    """Batch-mean PSNR in dB of ``x`` against ``ref`` (same shape)."""
    return float(batch_psnr(x, ref, data_range).mean())


def ssim(x: Tensor, ref: Tensor, data_range: float = 1.0) -> float:
    """Batch-mean Gaussian-window SSIM (agrees with scikit-image to 1e-3)."""
    return float(batch_ssim(x, ref, data_range).mean())


def consistency(op: Forward, x: Tensor, y: Tensor) -> float:
    """Batch-mean relative data consistency ``‖Ax − y‖ / ‖y‖``."""
    return float(batch_consistency(op, x, y).mean())
