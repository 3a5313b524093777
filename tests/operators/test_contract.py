"""The LinearOperator contract, for every registered operator."""

from __future__ import annotations

import math

import pytest
import torch

from deq_explorer.operators.base import LinearOperator, OperatorError
from deq_explorer.registry import operators
from deq_explorer.testing import check_operator

NAMES = operators.names()
#: the CUDA cases are marked ``cuda``: skipped without a GPU, run by scripts/gpu_check.sh
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def test_builtins_registered():
    assert NAMES[:6] == ["denoise", "deblur", "sr", "sr-bicubic", "inpaint", "mri"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_contract(name, device):
    check_operator(name, device=device)


def _dense(op: LinearOperator) -> torch.Tensor:
    """The matrix of ``A`` (complex outputs as stacked real and imaginary rows)."""
    n = math.prod(op.x_shape)
    ax = op.A(torch.eye(n, dtype=torch.float64).reshape(n, *op.x_shape)).reshape(n, -1)
    if ax.is_complex():
        ax = torch.cat([ax.real, ax.imag], 1)
    return ax.T


def _vec(y: torch.Tensor) -> torch.Tensor:
    y = y.reshape(-1)
    return torch.cat([y.real, y.imag]) if y.is_complex() else y


SMALL = {
    "denoise": ("denoise", (2, 5, 4)),
    "deblur": ("deblur:sigma=0.8", (1, 7, 6)),
    "sr": ("sr:scale=2,sigma=1.0", (1, 8, 6)),
    "sr-box": ("sr:scale=2,kernel=box", (1, 8, 6)),
    "sr-bicubic": ("sr-bicubic:scale=2", (1, 8, 6)),
    "inpaint": ("inpaint:p=0.4", (2, 5, 4)),
    "mri-radial": ("mri:rate=0.3", (1, 7, 6)),
    "mri-cartesian": ("mri:rate=0.4,pattern=cartesian,seed=3", (1, 8, 6)),
}


@pytest.mark.parametrize("case", SMALL)
def test_project_matches_dense_solution(case, gen):
    """Against an independent dense solve: p(μ) = (I + μAᵀA)⁻¹(x + μAᵀy), μ by bisection."""
    spec, shape = SMALL[case]
    op = operators.build(spec, shape=shape, dtype=torch.float64)
    a = _dense(op)
    x0 = torch.rand((1, *shape), dtype=torch.float64, generator=gen)
    y = op.measure(x0, 0.1, gen)
    x = torch.randn((1, *shape), dtype=torch.float64, generator=gen)
    xv, yv = x.reshape(-1), _vec(y)
    ata, aty = a.T @ a, a.T @ yv
    eye = torch.eye(len(xv), dtype=torch.float64)

    def p_of(mu: float) -> torch.Tensor:
        return torch.linalg.solve(eye + mu * ata, xv + mu * aty)

    least = torch.linalg.pinv(a) @ (yv - a @ xv) + xv  # nearest least-squares point
    floor = float((a @ least - yv).norm())
    eps = 0.5 * (floor + float((a @ xv - yv).norm()))
    lo, hi = -20.0, 20.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if float((a @ p_of(10**mid) - yv).norm()) <= eps else (mid, hi)
    expected = p_of(10**hi)
    got = op.project(x, y, eps).reshape(-1)
    assert torch.allclose(got, expected, atol=1e-7 * float(expected.norm()))
    assert torch.allclose(op.project(x, y, 0.0).reshape(-1), least, atol=1e-8 * float(least.norm()))
    # the adjoint and the prox agree with the dense matrix too
    assert torch.allclose(op.A_adjoint(y).reshape(-1), aty, atol=1e-12)
    assert torch.allclose(op.prox_data(x, y, 0.9).reshape(-1), p_of(0.9), atol=1e-10)
    assert op.lipschitz() == pytest.approx(float(torch.linalg.matrix_norm(a, 2)) ** 2, rel=1e-9)


class _NoSpectrum(LinearOperator):
    """Wraps an operator but hides its eigenbasis, forcing the bisection fallback."""

    def __init__(self, op: LinearOperator) -> None:
        super().__init__(op.x_shape)
        self.op = op

    @property
    def y_shape(self):
        return self.op.y_shape

    def A(self, x):
        return self.op.A(x)

    def A_adjoint(self, y):
        return self.op.A_adjoint(y)

    def prox_data(self, z, y, gamma):
        return self.op.prox_data(z, y, gamma)


@pytest.mark.parametrize("name", ["deblur", "sr", "mri"])
def test_bisection_fallback_agrees(name, gen):
    op = operators.build(name, shape=(1, 16, 12), dtype=torch.float64)
    x0 = torch.rand((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = op.measure(x0, 0.05, gen)
    x = op.init(y)
    eps = 0.5 * op.norm(op.A(x) - y) + 0.5 * op.norm(op.A(op.project(x, y)) - y)
    slow = _NoSpectrum(op).project(x, y, eps)
    assert (op.norm(op.A(slow) - y) <= eps * (1 + 1e-6)).all()
    assert torch.allclose(slow, op.project(x, y, eps), atol=1e-6 * float(x.norm()))


def test_shape_must_be_chw():
    for name in NAMES:
        with pytest.raises(OperatorError, match=r"\(C, H, W\)"):
            operators.build(name, shape=(8, 8))
