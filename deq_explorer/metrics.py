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

from deq_explorer.errors import ImageError

__all__ = [
    "SSIM_MIN_SIZE",
    "Forward",
    "batch_consistency",
    "batch_psnr",
    "batch_ssim",
    "consistency",
    "error_map",
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
        raise ImageError(f"image shape {tuple(x.shape)} differs from reference {tuple(ref.shape)}")
    if x.ndim == 2:
        x, ref = x[None, None], ref[None, None]
    elif x.ndim == 3:
        x, ref = x[None], ref[None]
    elif x.ndim != 4:
        raise ImageError(f"expected (B, C, H, W), (C, H, W) or (H, W); got {tuple(x.shape)}")
    return x, ref


def batch_psnr(x: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB per item, ``10 log10(range² / MSE)``; ``(B,)`` (``inf`` if identical).

    The squared error is accumulated in float64.
    """
    x, ref = _as_batch(x, ref)
    n = x[0].numel()
    err = torch.linalg.vector_norm((x - ref).flatten(1), dim=1, dtype=torch.float64) ** 2 / n
    return 10.0 * torch.log10(data_range**2 / err)


def _gaussian_window() -> Tensor:
    """The 11 normalised taps of the σ = 1.5 Gaussian, float64 ``(11,)``."""
    t = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / _SSIM_SIGMA) ** 2)
    return g / g.sum()


_WINDOW = _gaussian_window()


def batch_ssim(x: Tensor, ref: Tensor, data_range: float = 1.0) -> Tensor:
    """Gaussian-window SSIM per item, channels averaged; ``(B,)``.

    The 11-tap window (σ = 1.5) is applied without padding, separably (two
    1-D grouped convolutions, rows then columns) to the five statistics
    ``x, ref, x², ref², x·ref`` stacked along the channel axis: scikit-image
    crops the 5-pixel border where its padding would matter, so the valid
    part is exactly what it averages. Computed in
    the input's precision (at least float32) on images shifted by
    ``data_range/2``, which keeps the variances ``E[x²] − E[x]²`` free of
    cancellation; the mean over pixels is accumulated in float64.

    Raises
    ------
    ImageError
        If ``H`` or ``W`` is smaller than the 11-pixel window.
    """
    x, ref = _as_batch(x, ref)
    H, W = x.shape[-2:]
    size = SSIM_MIN_SIZE
    if H < size or W < size:
        raise ImageError(f"SSIM needs images of at least {size}×{size} pixels; got {H}×{W}")
    C = x.shape[1]
    dtype = torch.promote_types(x.dtype, torch.float32)
    shift = 0.5 * data_range
    a, b = x.to(dtype) - shift, ref.to(dtype) - shift
    stats = torch.cat([a, b, a * a, b * b, a * b], dim=1)  # (B, 5C, H, W)
    n = stats.shape[1]
    g = _WINDOW.to(device=x.device, dtype=dtype)
    blur = F.conv2d(stats, g.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)
    blur = F.conv2d(blur, g.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)
    ua, ub, uaa, ubb, uab = blur.unflatten(1, (5, C)).unbind(1)
    va, vb, vab = uaa - ua * ua, ubb - ub * ub, uab - ua * ub
    ux, uy = ua + shift, ub + shift
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vab + c2)) / ((ux * ux + uy * uy + c1) * (va + vb + c2))
    return s.flatten(1).mean(1, dtype=torch.float64)


def batch_consistency(op: Forward, x: Tensor, y: Tensor, y_norm: Tensor | None = None) -> Tensor:
    """Relative data consistency ``‖Ax − y‖ / ‖y‖`` per item; ``(B,)``.

    ``y_norm`` (``op.norm(y)``, ``(B,)``) may be passed by callers that
    measure the same ``y`` repeatedly; ``‖y‖ = 0`` counts as the smallest
    positive number.
    """
    if y_norm is None:
        y_norm = op.norm(y)
    return op.norm(op.A(x) - y) / y_norm.clamp_min(torch.finfo(x.dtype).tiny)


def psnr(x: Tensor, ref: Tensor, data_range: float = 1.0) -> float:
    """Batch-mean PSNR in dB of ``x`` against ``ref`` (same shape)."""
    return float(batch_psnr(x, ref, data_range).mean())


def ssim(x: Tensor, ref: Tensor, data_range: float = 1.0) -> float:
    """Batch-mean Gaussian-window SSIM (agrees with scikit-image to 1e-3)."""
    return float(batch_ssim(x, ref, data_range).mean())


def consistency(op: Forward, x: Tensor, y: Tensor) -> float:
    """Batch-mean relative data consistency ``‖Ax − y‖ / ‖y‖``."""
    return float(batch_consistency(op, x, y).mean())


def error_map(x: Tensor, ref: Tensor) -> Tensor:
    """Per-pixel absolute error ``|x − ref|``, same shape as ``x``."""
    return (x - ref).abs()
