"""Denoising: ``A = I``."""

from __future__ import annotations

import torch
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, resolvent
from deq_explorer.registry import operators

__all__ = ["Denoise", "denoise"]


class Denoise(LinearOperator):
    """The identity: ``y = x + e``."""

    name = "denoise"

    @property
    def y_shape(self) -> tuple[int, ...]:
        return self.x_shape

    def A(self, x: Tensor) -> Tensor:
        self._check(x, self.x_shape, "x")
        return x

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        return y

    def grad_data(self, x: Tensor, y: Tensor) -> Tensor:
        return x - y

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``z + γ/(1+γ)·(y − z)``."""
        one = torch.ones((), dtype=z.dtype, device=z.device)
        return z + resolvent(one, gamma, z.ndim) * (y - z)

    def spectrum(self, r: Tensor) -> tuple[Tensor, Tensor]:
        w = r.reshape(r.shape[0], -1).abs().square().sum(1, keepdim=True)
        return w, torch.ones(1, dtype=w.dtype, device=w.device)

    def init(self, y: Tensor) -> Tensor:
        return y.clone()

    def lipschitz(self) -> float:
        return 1.0


@operators.register("denoise", summary="Denoising (A = I)")
def denoise(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Denoise:
    """Denoising: ``A = I``."""
    return Denoise(shape, device, dtype)
