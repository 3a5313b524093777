"""Bicubic super-resolution: MATLAB-style anti-aliased bicubic downsampling.

``A(x) = M_h x M_wᵀ`` with ``(H/s × H)`` and ``(W/s × W)`` resampling matrices
(symmetric boundary folded in), so ``A = M_h ⊗ M_w`` and the adjoint
``M_hᵀ y M_w`` is exact. With the SVDs ``M = U Σ Vᵀ`` of the two small matrices,
``AAᵀ = (U_h Σ_h² U_hᵀ) ⊗ (U_w Σ_w² U_wᵀ)``, which gives the data prox and the
projection in closed form (no conjugate gradients needed).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, OperatorError, resolvent
from deq_explorer.operators.resize import imresize_matrix
from deq_explorer.operators.sr import check_scale, scale_needs
from deq_explorer.registry import Meta, operators

__all__ = ["BicubicDownsample", "sr_bicubic"]


class BicubicDownsample(LinearOperator):
    """``y = M_h x M_wᵀ``: bicubic downsampling by ``scale``, per channel."""

    name = "sr-bicubic"

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        scale: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(x_shape, device, dtype)
        check_scale(self.x_shape, scale)
        self.scale = scale
        sv = []
        for axis, n in (("h", self.x_shape[1]), ("w", self.x_shape[2])):
            m = imresize_matrix(n, n // scale)
            u, sigma, _ = torch.linalg.svd(m, full_matrices=False)
            self._register(f"m{axis}", m)
            self._register(f"u{axis}", u)
            self._register(f"q{axis}", u.mT @ m)  # Σ Vᵀ
            self._register(f"up{axis}", imresize_matrix(n // scale, n))
            sv.append(sigma.square())
        self._register("s", torch.outer(sv[0], sv[1]))

    @property
    def y_shape(self) -> tuple[int, ...]:
        c, h, w = self.x_shape
        return (c, h // self.scale, w // self.scale)

    def grid(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``imresize``'s pixel centres: output pixel ``i`` sits at ``s·i + (s − 1)/2``."""
        s = float(self.scale)
        return (s, s), ((s - 1) / 2, (s - 1) / 2)

    def A(self, x: Tensor) -> Tensor:
        self._check(x, self.x_shape, "x")
        return self._buf("mh", x) @ x @ self._buf("mw", x).mT

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        return self._buf("mh", y).mT @ y @ self._buf("mw", y)

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``z + Aᵀ(I/γ + AAᵀ)⁻¹(y − Az)`` in the singular bases of ``M_h``, ``M_w``."""
        self._check(z, self.x_shape, "z")
        uh, uw, qh, qw = (self._buf(n, z) for n in ("uh", "uw", "qh", "qw"))
        r = uh.mT @ y @ uw - qh @ z @ qw.mT
        v = resolvent(self._buf("s", z), gamma, z.ndim) * r
        return z + qh.mT @ v @ qw

    def spectrum(self, r: Tensor) -> tuple[Tensor, Tensor]:
        c = self._buf("uh", r).mT @ r @ self._buf("uw", r)
        w = c.square().reshape(r.shape[0], -1)
        return w, self._buf("s", r).expand(self.y_shape).reshape(-1)

    def init(self, y: Tensor) -> Tensor:
        """Bicubic upsampling (``imresize`` conventions)."""
        self._check(y, self.y_shape, "y")
        return self._buf("uph", y) @ y @ self._buf("upw", y).mT

    def lipschitz(self) -> float:
        return float(self._masters["s"].max())


@operators.register(
    "sr-bicubic",
    summary="Super-resolution by bicubic anti-aliased downsampling",
    metadata={"needs": scale_needs},
)
def sr_bicubic(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    scale: Annotated[Literal[2, 3, 4], Meta("downsampling factor")] = 2,
) -> BicubicDownsample:
    """Bicubic downsampling by ``scale ∈ {2, 3, 4}`` (MATLAB ``imresize`` with anti-aliasing)."""
    if len(shape) != 3:
        raise OperatorError(f"image shape must be (C, H, W), got {shape!r}")
    return BicubicDownsample(tuple(int(s) for s in shape), scale, device, dtype)
