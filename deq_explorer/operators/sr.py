"""Super-resolution: circular blur, then keep every ``s``-th pixel in each direction.

With ``B = S K`` (blur ``K``, decimation ``S``), ``BBᵀ`` is diagonal in the
low-resolution Fourier basis: decimation folds the ``s²`` spectral blocks of the
high-resolution spectrum onto one (``F_lr(Sv) = mean of the s² blocks of F_hr(v)``)
and zero-filling tiles the low-resolution spectrum ``s × s`` times. Its symbol is
``d = mean of the s² blocks of |k̂|²``, which gives the data prox in closed form
(Zhao et al., *Fast single image super-resolution using a new analytical
solution for ℓ2–ℓ2 problems*, IEEE TIP 2016):
``x = z + Bᵀ(I/γ + BBᵀ)⁻¹(y − Bz)``: ``B`` and ``Bᵀ`` by real FFTs of the image,
the inverse by a real FFT of the low-resolution residual.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, OperatorError, resolvent
from deq_explorer.operators.kernels import (
    box_kernel,
    centroid,
    check_sigma,
    embed_kernel,
    gaussian_kernel,
    load_kernel,
)
from deq_explorer.operators.needs import ImageNeeds
from deq_explorer.operators.resize import periodic_upsample_matrix
from deq_explorer.registry import Meta, operators

__all__ = ["SuperResolution", "check_scale", "scale_needs", "sr"]


def check_scale(shape: tuple[int, int, int], scale: int) -> None:
    """Raise :class:`OperatorError` unless ``scale ∈ {2, 3, 4}`` divides ``H`` and ``W``."""
    if scale not in (2, 3, 4):
        raise OperatorError(f"super-resolution scale must be 2, 3 or 4, got {scale}")
    _, h, w = shape
    if h < 2 * scale or w < 2 * scale:
        raise OperatorError(
            f"image {h}×{w} is too small for scale {scale}: it needs at least "
            f"{2 * scale}×{2 * scale} pixels"
        )
    if h % scale or w % scale:
        raise OperatorError(
            f"image size {h}×{w} is not divisible by the scale {scale}: crop it to "
            f"{h // scale * scale}×{w // scale * scale} (e.g. x[..., :{h // scale * scale}, "
            f":{w // scale * scale}])"
        )


def scale_needs(*, scale: int, **_: object) -> ImageNeeds:
    """The images an operator with a ``scale`` option takes: multiples of the scale."""
    return ImageNeeds(multiple=scale, example=(2, 18 * scale, 15 * scale))


def _fold(v: Tensor, s: int) -> Tensor:
    """Mean of the ``s × s`` spectral blocks: ``(…, sh, sw) -> (…, h, w)``."""
    *lead, hh, ww = v.shape
    return v.reshape(*lead, s, hh // s, s, ww // s).mean(dim=(-4, -2))


class SuperResolution(LinearOperator):
    """``y = (k ⊛ x)[::s, ::s]`` with circular blur ``k``, per channel.

    Parameters
    ----------
    x_shape : (C, H, W)
        ``H`` and ``W`` divisible by ``scale``.
    kernel : Tensor
        ``(H, W)`` grid kernel (see :mod:`deq_explorer.operators.kernels`).
    scale : int
        Decimation factor ``s ∈ {2, 3, 4}``.
    """

    name = "sr"

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        kernel: Tensor,
        scale: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(x_shape, device, dtype)
        check_scale(self.x_shape, scale)
        _, h, w = self.x_shape
        self.scale = scale
        self.kernel = kernel.double()
        k = torch.fft.fft2(self.kernel)
        d = _fold(k.abs().square(), scale)  # even in frequency: the rfft half suffices
        self._register("k_half", k[:, : w // 2 + 1])
        self._register("d", d)
        self._register("d_half", d[:, : w // scale // 2 + 1])
        oy, ox = centroid(self.kernel)
        self._offset = (oy, ox)
        self._register("up_h", periodic_upsample_matrix(h // scale, scale, oy))
        self._register("up_w", periodic_upsample_matrix(w // scale, scale, ox))

    @property
    def y_shape(self) -> tuple[int, ...]:
        c, h, w = self.x_shape
        return (c, h // self.scale, w // self.scale)

    def grid(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Every ``s``-th pixel, shifted by the kernel's centroid (a box's centre)."""
        return (float(self.scale), float(self.scale)), self._offset

    def _blur(self, x: Tensor, adjoint: bool = False) -> Tensor:
        k = self._buf("k_half", x)
        k = k.conj() if adjoint else k
        return torch.fft.irfft2(torch.fft.rfft2(x) * k, s=x.shape[-2:])

    def A(self, x: Tensor) -> Tensor:
        self._check(x, self.x_shape, "x")
        return self._blur(x)[..., :: self.scale, :: self.scale]

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        up = y.new_zeros((*y.shape[:-2], *self.x_shape[1:]))
        up[..., :: self.scale, :: self.scale] = y
        return self._blur(up, adjoint=True)

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``z + Bᵀ(I/γ + BBᵀ)⁻¹(y − Bz)`` with ``BBᵀ`` diagonal (symbol ``d``)."""
        r = y - self.A(z)
        res = resolvent(self._buf("d_half", z), gamma, z.ndim)
        v = torch.fft.irfft2(res * torch.fft.rfft2(r), s=r.shape[-2:])
        return z + self.A_adjoint(v)

    def spectrum(self, r: Tensor) -> tuple[Tensor, Tensor]:
        w = torch.fft.fft2(r, norm="ortho").abs().square().reshape(r.shape[0], -1)
        return w, self._buf("d", r).expand(self.y_shape).reshape(-1)

    def init(self, y: Tensor) -> Tensor:
        """Circular bicubic upsampling, aligned with the kernel's centroid."""
        self._check(y, self.y_shape, "y")
        return self._buf("up_h", y) @ y @ self._buf("up_w", y).mT

    def lipschitz(self) -> float:
        return float(self._masters["d"].max())


@operators.register(
    "sr",
    summary="Super-resolution: circular blur + s-fold decimation",
    metadata={"needs": scale_needs},
)
def sr(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    scale: Annotated[Literal[2, 3, 4], Meta("decimation factor s")] = 2,
    sigma: Annotated[float, Meta("std of the Gaussian kernel in pixels", "[0, inf)")] = 1.0,
    kernel: Annotated[str, Meta("gaussian, box (s × s) or a .npy kernel file")] = "gaussian",
) -> SuperResolution:
    """Blur (``kernel``: gaussian of std ``sigma``, box ``s × s`` or a ``.npy`` file), decimate."""
    if len(shape) != 3:
        raise OperatorError(f"image shape must be (C, H, W), got {shape!r}")
    check_scale(tuple(int(s) for s in shape), scale)
    hw = (int(shape[1]), int(shape[2]))
    check_sigma(sigma)
    if kernel == "gaussian":
        k = gaussian_kernel(hw, sigma)
    elif kernel == "box":
        k = box_kernel(hw, scale)
    elif kernel.lower().endswith(".npy"):
        k = embed_kernel(load_kernel(kernel), hw)
    else:
        raise OperatorError(
            f"sr kernel must be 'gaussian', 'box' or a path to a .npy file, got {kernel!r}"
        )
    return SuperResolution(shape, k, scale, device, dtype)
