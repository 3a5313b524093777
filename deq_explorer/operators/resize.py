"""Bicubic resampling along one axis as a matrix (MATLAB ``imresize`` conventions).

An image resized by separable matrices is ``M_h x M_wᵀ``; its adjoint is
``M_hᵀ y M_w``, exact by construction.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["cubic", "imresize_matrix", "periodic_upsample_matrix"]


def cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = −0.5`` (support ``[−2, 2]``)."""
    a = np.abs(t)
    return np.where(
        a <= 1,
        1.5 * a**3 - 2.5 * a**2 + 1,
        np.where(a < 2, -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2, 0.0),
    )


def imresize_matrix(n_in: int, n_out: int) -> Tensor:
    """``(n_out, n_in)`` bicubic resampling matrix as MATLAB's ``imresize`` builds it.

    Output pixel ``i`` sits at input coordinate ``(i + ½)·n_in/n_out − ½``. When
    shrinking, the kernel is stretched by the factor (anti-aliasing). Rows sum to
    1; taps outside the axis are folded back by symmetric (half-sample) reflection.
    """
    scale = n_out / n_in
    stretch = 1.0 / scale if scale < 1 else 1.0
    u = (np.arange(n_out) + 0.5) / scale - 0.5
    width = 4 * stretch
    left = np.floor(u - width / 2).astype(int)
    taps = math.ceil(width) + 2
    j = left[:, None] + np.arange(taps)[None, :]
    w = cubic((u[:, None] - j) / stretch) / stretch
    w /= w.sum(1, keepdims=True)
    folded = np.mod(j, 2 * n_in)
    folded = np.where(folded >= n_in, 2 * n_in - 1 - folded, folded)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), taps), folded.ravel()), w.ravel())
    return torch.from_numpy(m)


def periodic_upsample_matrix(n_low: int, factor: int, offset: float = 0.0) -> Tensor:
    """``(n_low·factor, n_low)`` circular bicubic interpolation matrix.

    Low-resolution sample ``i`` lives at high-resolution coordinate
    ``factor·i + offset``; indices wrap around (the circular model of ``sr``).
    """
    n_high = n_low * factor
    u = (np.arange(n_high) - offset) / factor
    base = np.floor(u).astype(int)
    j = base[:, None] + np.arange(-1, 3)[None, :]
    w = cubic(u[:, None] - j)
    w /= w.sum(1, keepdims=True)
    m = np.zeros((n_high, n_low))
    np.add.at(m, (np.repeat(np.arange(n_high), 4), np.mod(j, n_low).ravel()), w.ravel())
    return torch.from_numpy(m)
