"""Inpainting: pixels dropped at random, or by a user mask."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, OperatorError, resolvent
from deq_explorer.registry import Meta, operators

__all__ = ["Inpaint", "inpaint", "load_mask", "random_mask"]


def random_mask(shape: tuple[int, int], p: float, seed: int = 0) -> Tensor:
    """Boolean ``(H, W)`` mask keeping each pixel with probability ``1 − p``."""
    p = float(p)
    if not (math.isfinite(p) and 0 <= p < 1):
        raise OperatorError(f"inpaint drop probability p must lie in [0, 1), got {p}")
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand(shape, generator=g, dtype=torch.float64) >= p


def load_mask(path: str | Path, shape: tuple[int, int]) -> Tensor:
    """Read a user mask: a ``.npy`` array of 0/1 (or bool) of shape ``(H, W)``."""
    p = Path(path)
    try:
        m = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise OperatorError(f"cannot read mask file {str(path)!r} (.npy expected): {exc}") from None
    m = np.asarray(m)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.shape != tuple(shape):
        raise OperatorError(
            f"mask {str(path)!r} has shape {m.shape}, the image needs {tuple(shape)} (H, W)"
        )
    if not np.issubdtype(m.dtype, np.number) and m.dtype != bool:
        raise OperatorError(f"mask {str(path)!r} must be numeric or boolean, got {m.dtype}")
    if not np.isin(m, (0, 1)).all():
        raise OperatorError(f"mask {str(path)!r} must hold only 0 (dropped) and 1 (kept)")
    return torch.from_numpy(m.astype(bool))


def _gaussian_blur(v: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` (std ``sigma``, reflected borders)."""
    h, w = v.shape[-2:]
    radius = min(max(1, math.ceil(3 * sigma)), h - 1, w - 1)
    if radius < 1:
        return v
    t = torch.arange(-radius, radius + 1, device=v.device, dtype=v.dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    b, c = v.shape[:2]
    flat = v.reshape(b * c, 1, h, w)
    flat = torch.nn.functional.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = torch.nn.functional.conv2d(flat, g.view(1, 1, 1, -1))
    flat = torch.nn.functional.conv2d(flat, g.view(1, 1, -1, 1))
    return flat.reshape(b, c, h, w)


class Inpaint(LinearOperator):
    """``y = m ⊙ x`` with a binary ``(H, W)`` mask ``m``, the same for every channel.

    ``y`` has the image's shape, zeros where pixels are missing.
    """

    name = "inpaint"

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        mask: Tensor,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(x_shape, device, dtype)
        if tuple(mask.shape) != self.x_shape[1:]:
            raise OperatorError(f"mask shape {tuple(mask.shape)} != image {self.x_shape[1:]}")
        self._register("mask", mask.bool())
        self._register("m", mask.double())

    @property
    def mask(self) -> Tensor:
        """Boolean ``(H, W)`` mask of kept pixels."""
        return self._buf("mask", torch.empty(0, device=self.device, dtype=self.dtype))

    @property
    def y_shape(self) -> tuple[int, ...]:
        return self.x_shape

    def A(self, x: Tensor) -> Tensor:
        self._check(x, self.x_shape, "x")
        return x * self._buf("m", x)

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        return y * self._buf("m", y)

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``z + m ⊙ γ/(1+γ)·(y − z)``."""
        m = self._buf("m", z)
        return z + m * resolvent(torch.ones_like(m), gamma, z.ndim) * (y - z)

    def spectrum(self, r: Tensor) -> tuple[Tensor, Tensor]:
        m = self._buf("m", r)
        r2 = r.abs().square()
        kept = (r2 * m).reshape(r.shape[0], -1).sum(1)
        lost = (r2 * (1 - m)).reshape(r.shape[0], -1).sum(1)
        return torch.stack([kept, lost], 1), torch.tensor([1.0, 0.0], device=r.device)

    def init(self, y: Tensor) -> Tensor:
        """The kept pixels, and each missing one filled by normalised convolution.

        A missing pixel gets the Gaussian-weighted mean of the kept pixels around it,
        ``(G_s * (m ⊙ y)) / (G_s * m)``, at the smallest scale ``s`` whose window holds kept
        pixels: ``s`` starts at half the mean spacing of the kept pixels, ``0.5/√(kept
        fraction)``, and doubles for the holes still empty (large holes of a user mask).
        Holes no scale reaches take the mean of the kept pixels. Far better than zeros as a
        start (PnP-ADMM with a denoiser starts from its ``init``), and cheap.
        """
        self._check(y, self.y_shape, "y")
        m = self._buf("m", y)[None, None]  # (1, 1, H, W)
        kept = float(m.mean())
        if kept in (0.0, 1.0):
            return y * m
        x = (y * m).clone()
        todo = m == 0
        sigma = 0.5 / math.sqrt(kept)
        while bool(todo.any()) and sigma < 2 * max(m.shape[-2:]):
            weight = _gaussian_blur(m, sigma)
            fill = todo & (weight > 1e-3)
            x = torch.where(fill, _gaussian_blur(y * m, sigma) / weight.clamp_min(1e-3), x)
            todo = todo & ~fill
            sigma *= 2
        mean = (y * m).sum((-2, -1), keepdim=True) / m.sum()
        return torch.where(todo, mean, x)

    def support(self) -> Tensor:
        return self.mask

    def lipschitz(self) -> float:
        return 1.0 if bool(self.mask.any()) else 0.0


@operators.register("inpaint", summary="Inpainting: random pixel drop (p) or a user mask")
def inpaint(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    p: Annotated[float, Meta("probability that a pixel is dropped", "[0, 1)")] = 0.5,
    seed: Annotated[int, Meta("seed of the random mask")] = 0,
    mask: Annotated[str, Meta("a .npy mask file (1 = kept); replaces the random mask")] = "",
) -> Inpaint:
    """Inpainting: each pixel dropped with probability ``p`` (or a ``.npy`` mask, 1 = kept)."""
    if len(shape) != 3:
        raise OperatorError(f"image shape must be (C, H, W), got {shape!r}")
    hw = (int(shape[1]), int(shape[2]))
    m = load_mask(mask, hw) if mask else random_mask(hw, p, seed)
    return Inpaint(shape, m, device, dtype)
