"""Blur kernels laid out on the image grid for circular (FFT) convolution.

A *grid kernel* ``k`` of shape ``(H, W)`` acts as ``(k ⊛ x)[n] = Σ_m k[m] x[n − m]``
with offsets ``m`` taken modulo the image size, so ``k[0, 0]`` is the weight of
the pixel itself: a delta at ``(0, 0)`` leaves images in place.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from deq_explorer.operators.base import OperatorError

__all__ = [
    "box_kernel",
    "centroid",
    "check_sigma",
    "embed_kernel",
    "gaussian_kernel",
    "load_kernel",
]


def _offsets(n: int) -> np.ndarray:
    """Signed circular offsets ``0, 1, …, −2, −1`` of an axis of length ``n``."""
    i = np.arange(n)
    return np.where(i <= n // 2, i, i - n)


def check_sigma(sigma: float) -> float:
    """``sigma`` as a float, or :class:`OperatorError` if negative or not finite."""
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise OperatorError(f"blur sigma must be finite and >= 0, got {sigma}")
    return sigma


def gaussian_kernel(shape: tuple[int, int], sigma: float) -> Tensor:
    """Normalised Gaussian of std ``sigma`` pixels centred at ``(0, 0)`` (float64).

    Not truncated (it spans the grid), so its spectrum has no zeros; ``sigma = 0``
    gives the delta.
    """
    sigma = check_sigma(sigma)
    axes = []
    for n in shape:
        d = _offsets(n).astype(np.float64)
        g = (d == 0).astype(np.float64) if sigma == 0 else np.exp(-(d**2) / (2 * sigma**2))
        axes.append(g / g.sum())
    return torch.from_numpy(np.outer(axes[0], axes[1]))


def box_kernel(shape: tuple[int, int], size: int) -> Tensor:
    """Mean over the ``size × size`` block ``x[n … n+size−1]`` (pixel binning), float64."""
    k = np.zeros(shape)
    idx = [(-np.arange(size)) % n for n in shape]
    k[np.ix_(idx[0], idx[1])] = 1.0 / size**2
    return torch.from_numpy(k)


def embed_kernel(kernel: np.ndarray, shape: tuple[int, int]) -> Tensor:
    """Place a small ``(kh, kw)`` kernel on the grid with its centre ``(kh//2, kw//2)`` at 0."""
    kh, kw = kernel.shape
    if kh > shape[0] or kw > shape[1]:
        raise OperatorError(
            f"blur kernel of size {kh}×{kw} is larger than the image {shape[0]}×{shape[1]}: "
            "use a smaller kernel or a larger image"
        )
    out = np.zeros(shape)
    rows = (np.arange(kh) - kh // 2) % shape[0]
    cols = (np.arange(kw) - kw // 2) % shape[1]
    out[np.ix_(rows, cols)] = kernel
    return torch.from_numpy(out)


def load_kernel(path: str | Path) -> np.ndarray:
    """Read a user blur kernel: a 2-D, finite, not all-zero ``.npy`` array (float64).

    The kernel is used as given (not normalised); its centre is ``(kh//2, kw//2)``.
    """
    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise OperatorError(f"kernel {str(path)!r} must be a .npy file holding a 2-D array")
    try:
        k = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise OperatorError(f"cannot read kernel file {str(path)!r}: {exc}") from None
    k = np.asarray(k)
    while k.ndim > 2 and k.shape[0] == 1:
        k = k[0]
    if k.ndim != 2 or k.size == 0 or not np.issubdtype(k.dtype, np.number):
        raise OperatorError(
            f"kernel file {str(path)!r} must hold a 2-D numeric array, got shape {k.shape}"
        )
    k = k.astype(np.float64)
    if not np.isfinite(k).all():
        raise OperatorError(f"kernel file {str(path)!r} contains NaN or Inf")
    if not np.any(k):
        raise OperatorError(f"kernel file {str(path)!r} is all zeros")
    return k


def centroid(kernel: Tensor) -> tuple[float, float]:
    """Where a grid kernel's output sample sits relative to ``n``: ``−Σ m k[m] / Σ k``.

    ``(k ⊛ x)[n]`` is a weighted mean of ``x`` around ``n + centroid`` (``(0, 0)``
    for symmetric kernels, ``((s−1)/2, (s−1)/2)`` for the ``s × s`` box).
    """
    k = kernel.double()
    total = float(k.sum())
    if total == 0:
        return 0.0, 0.0
    dy = torch.from_numpy(_offsets(k.shape[0]).astype(np.float64))
    dx = torch.from_numpy(_offsets(k.shape[1]).astype(np.float64))
    return -float((k.sum(1) * dy).sum()) / total, -float((k.sum(0) * dx).sum()) / total
