"""A tiny test-only operator (random-mask inpainting with closed forms) and problems."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from deq_explorer.fixedpoint import FixedPointMap
from deq_explorer.operators.base import LinearOperator


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one intra-op thread avoids contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class MaskOperator(LinearOperator):
    """``A x = M ⊙ x`` with a fixed binary mask ``M`` ``(C, H, W)``; ``y`` lives in image space."""

    name = "test-mask"

    def __init__(self, mask: Tensor) -> None:
        super().__init__(tuple(mask.shape))
        self.mask = mask

    @property
    def y_shape(self) -> tuple[int, ...]:
        return self.x_shape

    def A(self, x: Tensor) -> Tensor:
        return self.mask * x

    def A_adjoint(self, y: Tensor) -> Tensor:
        return self.mask * y

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        return (z + gamma * self.mask * y) / (1 + gamma * self.mask)

    def project(self, x: Tensor, y: Tensor, eps: float = 0.0) -> Tensor:
        r = self.mask * x - y
        norm = self.norm(r).view(-1, 1, 1, 1)
        shrink = torch.where(norm > eps, eps / norm.clamp_min(1e-30), 1.0)
        return x - self.mask * r * (1 - shrink)

    def init(self, y: Tensor) -> Tensor:
        return y.clone()


def smooth_image(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """A piecewise-smooth random image ``(B, C, H, W)`` in [0, 1]."""
    B, C, H, W = shape
    coarse = torch.rand(B, C, 4, 4, generator=generator)
    up = torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=True)
    return (up > 0.5).to(torch.float32) * 0.6 + 0.2 * up


@pytest.fixture
def problem() -> tuple[MaskOperator, Tensor, Tensor]:
    """Inpainting of a 2×1×23×17 image (odd, non-square), 60 % pixels kept, noise 0.02."""
    g = torch.Generator().manual_seed(0)
    x = smooth_image((2, 1, 23, 17), g)
    op = MaskOperator((torch.rand(1, 23, 17, generator=g) < 0.6).float())
    y = op.A(x + 0.02 * torch.randn(x.shape, generator=g))
    return op, y, x


def linear_map(op: MaskOperator, y: Tensor, contraction: float = 0.95) -> FixedPointMap:
    """``T(z) = c·K z + y`` with ``K`` the circular [1, 2, 1]/4 ⊗ [1, 2, 1]/4 blur.

    ``K`` is symmetric with eigenvalues in [0, 1], so ``T`` is a contraction
    with rate ``c`` and a unique fixed point.
    """
    k = torch.tensor([0.25, 0.5, 0.25])
    kernel = (k[:, None] * k[None, :]).view(1, 1, 3, 3).to(y.dtype)

    def T(z: Tensor) -> Tensor:
        B, C, H, W = z.shape
        padded = torch.nn.functional.pad(z.reshape(B * C, 1, H, W), (1, 1, 1, 1), mode="circular")
        return contraction * torch.nn.functional.conv2d(padded, kernel).view_as(z) + y

    return FixedPointMap(T=T, z0=torch.zeros_like(y), image=lambda z: z, op=op, y=y, name="linear")


@pytest.fixture
def mask_operator() -> type[MaskOperator]:
    """The test-only :class:`MaskOperator` class."""
    return MaskOperator


@pytest.fixture
def make_linear_map():
    """The :func:`linear_map` builder."""
    return linear_map
