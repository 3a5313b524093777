"""Parallel-beam geometry, the discrete Radon transform as a sparse matrix, the ramp filter.

The image ``(H, W)`` has unit pixels centred on the rotation axis; a view at
angle ``θ`` integrates along lines ``t·(cos θ, sin θ) + s·(−sin θ, cos θ)`` for
detector offsets ``t`` on a unit grid wide enough to see the whole image. Each
line integral is a Riemann sum over points ``s`` spaced :data:`RAY_STEP` apart
of the bilinearly interpolated image (zero outside). That map is linear, so it
is stored once as a sparse matrix ``R`` of interpolation weights; ``Rᵀ`` (the
same weights, transposed) is its exact adjoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from torch import Tensor

__all__ = ["RAY_STEP", "Geometry", "parallel_beam", "radon_matrix", "ramp_filter"]

#: spacing of the sample points along each ray, in pixels
RAY_STEP = 1.0


@dataclass(frozen=True, kw_only=True)
class Geometry:
    """A parallel-beam scan of an ``height × width`` image.

    Attributes
    ----------
    height, width : int
        Image size in pixels.
    angles : tuple of float
        View angles in radians.
    detectors : int
        Number of unit-spaced detector bins, centred on the rotation axis.
    """

    height: int
    width: int
    angles: tuple[float, ...]
    detectors: int

    @property
    def angle_step(self) -> float:
        """Angular weight ``dθ`` of one view in a back-projection (radians)."""
        if len(self.angles) < 2:
            return math.pi
        return abs(self.angles[1] - self.angles[0])


def parallel_beam(height: int, width: int, angles: int, arc: float) -> Geometry:
    """``angles`` equally spaced views ``θ_k = k·arc/angles`` (``arc`` in degrees), k < angles.

    The detector has an odd number of bins covering the image's diagonal plus
    the one-pixel reach of bilinear interpolation at every angle.
    """
    radius = math.hypot((height + 1) / 2, (width + 1) / 2)
    step = math.radians(arc) / angles
    return Geometry(
        height=height,
        width=width,
        angles=tuple(k * step for k in range(angles)),
        detectors=2 * math.ceil(radius) + 1,
    )


def _views(g: Geometry, thetas: np.ndarray) -> sparse.coo_matrix:
    """Rows of the views ``thetas`` (view-major, then detector bin), duplicates not yet summed."""
    half = (g.detectors - 1) / 2
    n_s = 2 * math.ceil(half / RAY_STEP) + 1
    t = np.arange(g.detectors) - half
    s = (np.arange(n_s) - (n_s - 1) / 2) * RAY_STEP
    cos, sin = np.cos(thetas)[:, None, None], np.sin(thetas)[:, None, None]
    t, s = t[None, :, None], s[None, None, :]
    # Cartesian (x right, y up) -> pixel indices (row i down, column j right)
    j = t * cos - s * sin + (g.width - 1) / 2
    i = (g.height - 1) / 2 - (t * sin + s * cos)
    ray = np.broadcast_to(np.arange(len(thetas) * g.detectors).reshape(-1, g.detectors, 1), i.shape)
    inside = (i > -1) & (i < g.height) & (j > -1) & (j < g.width)
    i, j, ray = i[inside], j[inside], ray[inside]
    i0, j0 = np.floor(i), np.floor(j)
    di, dj = i - i0, j - j0
    i0, j0 = i0.astype(np.int64), j0.astype(np.int64)
    rows, cols, vals = [], [], []
    for oi, oj, w in (
        (0, 0, (1 - di) * (1 - dj)),
        (0, 1, (1 - di) * dj),
        (1, 0, di * (1 - dj)),
        (1, 1, di * dj),
    ):
        ii, jj = i0 + oi, j0 + oj
        ok = (ii >= 0) & (ii < g.height) & (jj >= 0) & (jj < g.width) & (w > 0)
        rows.append(ray[ok])
        cols.append(ii[ok] * g.width + jj[ok])
        vals.append(w[ok] * RAY_STEP)
    shape = (len(thetas) * g.detectors, g.height * g.width)
    entries = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
    return sparse.coo_matrix(entries, shape)


def radon_matrix(g: Geometry) -> sparse.csr_matrix:
    """The Radon transform of ``g``: a float64 CSR matrix ``(n_angles·detectors, H·W)``.

    Rows are ``k·detectors + bin`` (view-major), columns ``i·width + j``
    (row-major pixels); entries are bilinear weights times the ray step.
    """
    points = g.detectors * (2 * math.ceil((g.detectors - 1) / 2 / RAY_STEP) + 1)
    chunk = max(1, 2_000_000 // points)
    angles = np.asarray(g.angles, dtype=np.float64)
    blocks = [_views(g, angles[k : k + chunk]).tocsr() for k in range(0, len(angles), chunk)]
    m = sparse.vstack(blocks, format="csr")
    m.sum_duplicates()
    return m


def ramp_filter(y: Tensor) -> Tensor:
    """Ram-Lak filtering along the last (detector) axis, unit bin spacing.

    Uses the band-limited spatial kernel ``h(0) = 1/4``, ``h(n) = −1/(πn)²`` for
    odd ``n`` (zero for even ``n ≠ 0``) with zero padding to at least twice the
    detector length, so there is no wrap-around and no DC offset.
    """
    n = y.shape[-1]
    size = 1 << (2 * n - 1).bit_length()
    k = torch.arange(size, device=y.device)
    k = torch.where(k < size // 2, k, k - size).to(y.dtype)
    h = torch.where(k.remainder(2) == 1, -1 / (math.pi * k) ** 2, torch.zeros_like(k))
    h[0] = 0.25
    response = torch.fft.rfft(h).real
    return torch.fft.irfft(torch.fft.rfft(y, n=size) * response, n=size)[..., :n]
