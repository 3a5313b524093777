"""The linear-operator contract every forward model fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["LinearOperator", "OperatorError"]


class OperatorError(ValueError):
    """An operator was asked for something it cannot do (bad shape, parameter ...)."""


class LinearOperator(ABC):
    """A linear forward model ``y = A x`` bound to one image shape.

    Images are real tensors of shape ``(B, C, H, W)`` with ``(C, H, W) ==
    self.x_shape``; measurements have shape ``(B,) + self.y_shape`` and are
    complex where the physics says so (MRI). Every method works batched, on
    CPU and CUDA, in float32 and float64.

    Parameters
    ----------
    x_shape : tuple of int
        ``(C, H, W)`` of the images this operator acts on.
    """

    #: registry name of the operator (set by subclasses)
    name: str = ""

    def __init__(self, x_shape: tuple[int, int, int]) -> None:
        self.x_shape = tuple(int(s) for s in x_shape)

    # -- the model ------------------------------------------------------------
    @property
    @abstractmethod
    def y_shape(self) -> tuple[int, ...]:
        """Shape of one measurement (without the batch axis)."""

    @abstractmethod
    def A(self, x: Tensor) -> Tensor:
        """Forward model ``(B, C, H, W) -> (B, *y_shape)``."""

    @abstractmethod
    def A_adjoint(self, y: Tensor) -> Tensor:
        """Exact adjoint ``(B, *y_shape) -> (B, C, H, W)`` (real part for real images)."""

    def grad_data(self, x: Tensor, y: Tensor) -> Tensor:
        """Gradient of ``½‖Ax − y‖²`` at ``x``: ``Aᵀ(Ax − y)``."""
        return self.A_adjoint(self.A(x) - y)

    @abstractmethod
    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``argmin_x ½‖Ax − y‖² + ‖x − z‖² / (2γ)``."""

    def project(self, x: Tensor, y: Tensor, eps: float = 0.0) -> Tensor:
        """Euclidean projection of ``x`` onto ``{u : ‖Au − y‖ ≤ ε}`` (per batch item)."""
        raise NotImplementedError

    def init(self, y: Tensor) -> Tensor:
        """Starting image from a measurement (default: back-projection ``Aᵀy``)."""
        return self.A_adjoint(y)

    def norm(self, y: Tensor) -> Tensor:
        """Per-item Euclidean norm of measurements ``(B, ...)`` -> ``(B,)``."""
        return torch.linalg.vector_norm(y.reshape(y.shape[0], -1), dim=1)
