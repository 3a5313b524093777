"""Single-coil MRI: masked orthonormal 2-D Fourier transform of a real image.

``A(x) = m ⊙ F x`` (complex, zeros off the mask), ``Aᵀ(y) = Re F⁻¹(m ⊙ y)``.
Because the image is real, ``AᵀA = F⁻¹ diag(m_s) F`` with the symmetrised mask
``m_s(k) = (m(k) + m(−k))/2 ∈ {0, ½, 1}``; the data prox is diagonal in k-space.
In ``C^m`` seen as a real space, ``AAᵀ`` has eigenvalue 1 on the Hermitian part
of the samples whose mirror ``−k`` is sampled too, 0 on their anti-Hermitian
part, ½ on samples whose mirror is not sampled, 0 off the mask.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, OperatorError, resolvent
from deq_explorer.operators.masks import cartesian_mask, centered, check_rate, radial_mask
from deq_explorer.operators.needs import ImageNeeds
from deq_explorer.registry import Meta, operators

__all__ = ["MRI", "mri"]


def _mirror(v: Tensor) -> Tensor:
    """``v(−k)`` on the FFT grid (index ``−k mod N``)."""
    return torch.roll(torch.flip(v, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))


class MRI(LinearOperator):
    """Single-coil Cartesian-grid MRI with a boolean k-space ``mask`` ``(H, W)``.

    The mask is in ``torch.fft.fft2`` layout (DC at ``[0, 0]``); see
    :attr:`mask_centered` for display. Channels are imaged alike; the registry
    entry declares gray images (:class:`~deq_explorer.operators.needs.ImageNeeds`).
    """

    name = "mri"

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
        mask = mask.bool()
        mirrored = _mirror(mask)
        self._register("mask", mask)
        self._register("m", mask.double())
        self._register("ms", (mask.double() + mirrored.double()) / 2)
        self._register("pair", (mask & mirrored).double())
        self._register("single", (mask & ~mirrored).double())

    @property
    def mask(self) -> Tensor:
        """Boolean ``(H, W)`` sampling mask, ``fft2`` layout (DC at ``[0, 0]``)."""
        return self._buf("mask", torch.empty(0, device=self.device, dtype=self.dtype))

    @property
    def mask_centered(self) -> Tensor:
        """The mask with DC in the middle, for display."""
        return centered(self.mask)

    @property
    def rate(self) -> float:
        """Sampled fraction of k-space."""
        return float(self._masters["m"].mean())

    @property
    def y_shape(self) -> tuple[int, ...]:
        return self.x_shape

    def A(self, x: Tensor) -> Tensor:
        self._check(x, self.x_shape, "x")
        return self._buf("m", x) * torch.fft.fft2(x, norm="ortho")

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        return torch.fft.ifft2(self._buf("m", y) * y, norm="ortho").real

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``z + (I/γ + AᵀA)⁻¹Aᵀ(y − Az)``, diagonal in k-space (symbol ``m_s``).

        With ``q = m ⊙ (y − Fz)``, ``F Aᵀ(y − Az) = (q + conj q(−k))/2``; the
        resolvent is real and even, so the real part of ``F⁻¹`` of the mirrored
        half equals that of the other: ``x = z + Re F⁻¹(resolvent ⊙ q)``.
        """
        self._check(z, self.x_shape, "z")
        q = self._buf("m", z) * (y - torch.fft.fft2(z, norm="ortho"))
        step = resolvent(self._buf("ms", z), gamma, z.ndim) * q
        return z + torch.fft.ifft2(step, norm="ortho").real

    def spectrum(self, r: Tensor) -> tuple[Tensor, Tensor]:
        pair, single = self._buf("pair", r), self._buf("single", r)
        mirrored = _mirror(r).conj()
        herm = ((r + mirrored) / 2).abs().square()
        anti = ((r - mirrored) / 2).abs().square()
        r2 = r.abs().square()
        b = r.shape[0]

        def total(v: Tensor) -> Tensor:
            return v.reshape(b, -1).sum(1)

        w = torch.stack(
            [total(pair * herm), total(single * r2), total(pair * anti + (1 - pair - single) * r2)],
            1,
        )
        return w, torch.tensor([1.0, 0.5, 0.0], device=r.device)

    def init(self, y: Tensor) -> Tensor:
        """Zero-filled reconstruction ``A⁺y`` (equals ``Aᵀy`` for symmetric masks)."""
        self._check(y, self.y_shape, "y")
        z = torch.zeros((y.shape[0], *self.x_shape), dtype=y.real.dtype, device=y.device)
        return self.prox_data(z, y, float("inf"))

    def support(self) -> Tensor:
        return self.mask

    def lipschitz(self) -> float:
        return float(self._masters["ms"].max())


@operators.register(
    "mri",
    summary="Single-coil MRI: radial or Cartesian k-space sampling",
    metadata={"needs": ImageNeeds(channels=1, example=(1, 37, 31))},
)
def mri(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    rate: Annotated[float, Meta("fraction of k-space sampled", "(0, 1]")] = 0.1,
    pattern: Annotated[Literal["radial", "cartesian"], Meta("k-space sampling pattern")] = "radial",
    seed: Annotated[int, Meta("seed of the random sampling")] = 0,
) -> MRI:
    """Single-coil MRI sampling a fraction ``rate`` of k-space (``pattern``: radial | cartesian)."""
    if len(shape) != 3:
        raise OperatorError(f"image shape must be (C, H, W), got {shape!r}")
    c, h, w = (int(s) for s in shape)
    if h < 2 or w < 2:
        raise OperatorError(f"image {h}×{w} is too small for MRI: it needs at least 2×2 pixels")
    check_rate(rate)
    if pattern == "radial":
        m = radial_mask((h, w), rate, seed)
    elif pattern == "cartesian":
        m = cartesian_mask((h, w), rate, seed)
    else:
        raise OperatorError(f"MRI pattern must be 'radial' or 'cartesian', got {pattern!r}")
    return MRI((c, h, w), m, device, dtype)
