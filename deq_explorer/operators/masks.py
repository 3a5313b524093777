"""k-space sampling masks for single-coil MRI.

Masks are boolean ``(H, W)`` tensors in the layout of ``torch.fft.fft2`` (the
k-space centre, DC, at ``[0, 0]``); :func:`centered` gives the picture a person
expects, with DC in the middle.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from deq_explorer.operators.base import OperatorError

__all__ = ["cartesian_mask", "centered", "check_rate", "radial_lines", "radial_mask"]


def check_rate(rate: float) -> float:
    """``rate`` as a float, or :class:`OperatorError` unless it lies in ``(0, 1]``."""
    rate = float(rate)
    if not (math.isfinite(rate) and 0 < rate <= 1):
        raise OperatorError(f"MRI sampling rate must lie in (0, 1], got {rate}")
    return rate


def centered(mask: Tensor) -> Tensor:
    """The mask with the k-space centre moved to the middle (for display)."""
    return torch.fft.fftshift(mask, dim=(-2, -1))


def radial_lines(shape: tuple[int, int], lines: int, offset: float = 0.0) -> Tensor:
    """``lines`` full lines through the k-space centre at angles ``offset + jπ/lines``.

    Every line is rasterised symmetrically about DC (``k`` and ``−k`` together),
    so the mask is Hermitian-symmetric and ``AᵀA`` of the MRI operator is a
    Fourier projection.
    """
    h, w = shape
    reach = math.hypot(h, w) / 2 + 1
    t = torch.arange(-math.ceil(2 * reach), math.ceil(2 * reach) + 1, dtype=torch.float64) / 2
    theta = offset + torch.arange(lines, dtype=torch.float64) * math.pi / lines
    dy = torch.round(torch.sin(theta)[:, None] * t).long().ravel()
    dx = torch.round(torch.cos(theta)[:, None] * t).long().ravel()
    keep = (2 * dy.abs() <= h) & (2 * dx.abs() <= w)
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[dy[keep] % h, dx[keep] % w] = True
    return mask


def radial_mask(shape: tuple[int, int], rate: float, seed: int = 0) -> Tensor:
    """Fewest radial lines whose sampled fraction reaches ``rate`` (≥ rate).

    ``seed`` rotates the set of lines by a random angle within one line spacing.
    """
    rate = check_rate(rate)
    h, w = shape
    rng = torch.Generator().manual_seed(int(seed))
    turn = float(torch.rand((), generator=rng, dtype=torch.float64))

    def build(n: int) -> Tensor:
        return radial_lines(shape, n, turn * math.pi / n)

    if rate == 1:
        return torch.ones(shape, dtype=torch.bool)
    target = rate * h * w
    hi, most = 1, 4 * (h + w)  # at ``most`` lines the spacing is below a pixel
    best = build(hi)
    while int(best.sum()) < target:
        if hi == most:
            return torch.ones(shape, dtype=torch.bool)
        hi = min(2 * hi, most)
        best = build(hi)
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        m = build(mid)
        if int(m.sum()) >= target:
            hi, best = mid, m
        else:
            lo = mid
    return best


def cartesian_mask(shape: tuple[int, int], rate: float, seed: int = 0) -> Tensor:
    """Variable-density Cartesian mask: whole rows (phase-encoding lines).

    ``ceil(rate·H)`` rows: a third of them (at least one) fully sampled around
    DC, the rest drawn without replacement with density ``(1 − 2|k|/H)² +
    0.01``, falling off away from the centre.
    """
    rate = check_rate(rate)
    h, w = shape
    n = min(h, math.ceil(rate * h - 1e-9))
    centre = max(1, n // 3)
    k = torch.arange(h)
    signed = torch.where(k <= h // 2, k, k - h)
    order = torch.argsort(signed.abs() * 2 + (signed < 0).long(), stable=True)
    rows = torch.zeros(h, dtype=torch.bool)
    rows[order[:centre]] = True
    rest = n - centre
    if rest > 0:
        density = (1 - 2 * signed.abs().double() / h).clamp_min(0) ** 2 + 0.01
        density[rows] = 0
        rng = torch.Generator().manual_seed(int(seed))
        rows[torch.multinomial(density, rest, replacement=False, generator=rng)] = True
    return rows[:, None].expand(h, w).clone()
