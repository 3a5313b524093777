"""Deblurring: circular convolution with a Gaussian or a user kernel, per channel."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, OperatorError, resolvent
from deq_explorer.operators.kernels import embed_kernel, gaussian_kernel, load_kernel
from deq_explorer.registry import Meta, operators

__all__ = ["Deblur", "deblur"]


class Deblur(LinearOperator):
    """``y = k ⊛ x``: circular convolution (FFT) with a grid kernel, per channel.

    Parameters
    ----------
    x_shape : (C, H, W)
    kernel : Tensor
        ``(H, W)`` grid kernel (see :mod:`deq_explorer.operators.kernels`).
    """

    name = "deblur"

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        kernel: Tensor,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(x_shape, device, dtype)
        h, w = self.x_shape[1:]
        if tuple(kernel.shape) != (h, w):
            raise OperatorError(f"grid kernel shape {tuple(kernel.shape)} != image {(h, w)}")
        self.kernel = kernel.double()
        k = torch.fft.fft2(self.kernel)
        self._register("k", k[:, : w // 2 + 1])  # half spectrum for rfft2
        self._register("s", k.abs().square()[:, : w // 2 + 1])
        self._register("s_full", k.abs().square())

    @property
    def y_shape(self) -> tuple[int, ...]:
        return self.x_shape

    def _filter(self, x: Tensor, symbol: Tensor) -> Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x) * symbol, s=x.shape[-2:])

    def A(self, x: Tensor) -> Tensor:
        self._check(x, self.x_shape, "x")
        return self._filter(x, self._buf("k", x))

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        return self._filter(y, self._buf("k", y).conj())

    def grad_data(self, x: Tensor, y: Tensor) -> Tensor:
        self._check(x, self.x_shape, "x")
        k = self._buf("k", x)
        r = k * torch.fft.rfft2(x) - torch.fft.rfft2(y)
        return torch.fft.irfft2(k.conj() * r, s=x.shape[-2:])

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``z + Aᵀ(I/γ + AAᵀ)⁻¹(y − Az)``, diagonal in Fourier."""
        self._check(z, self.x_shape, "z")
        k = self._buf("k", z)
        zf = torch.fft.rfft2(z)
        v = resolvent(self._buf("s", z), gamma, z.ndim) * (torch.fft.rfft2(y) - k * zf)
        return torch.fft.irfft2(zf + k.conj() * v, s=z.shape[-2:])

    def spectrum(self, r: Tensor) -> tuple[Tensor, Tensor]:
        w = torch.fft.fft2(r, norm="ortho").abs().square().reshape(r.shape[0], -1)
        s = self._buf("s_full", r).expand(self.x_shape).reshape(-1)
        return w, s

    def init(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        return y.clone()

    def lipschitz(self) -> float:
        return float(self._masters["s_full"].max())


@operators.register("deblur", summary="Deblurring: Gaussian (sigma) or user kernel, circular")
def deblur(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    sigma: Annotated[float, Meta("std of the Gaussian blur in pixels", "[0, inf)")] = 1.6,
    kernel: Annotated[str, Meta("a .npy blur kernel file; replaces the Gaussian")] = "",
) -> Deblur:
    """Deblurring by a Gaussian of std ``sigma`` pixels or a ``.npy`` kernel (overrides sigma)."""
    if len(shape) != 3:
        raise OperatorError(f"image shape must be (C, H, W), got {shape!r}")
    hw = (int(shape[1]), int(shape[2]))
    k = embed_kernel(load_kernel(kernel), hw) if kernel else gaussian_kernel(hw, sigma)
    return Deblur(shape, k, device, dtype)
