"""The LinearOperator contract, for every registered operator."""

from __future__ import annotations

import math

import pytest
import torch
from operator_helpers import DEVICES, build, rand_y

from deq_explorer.operators.base import LinearOperator, OperatorError
from deq_explorer.registry import operators

NAMES = operators.names()


def inner(a: torch.Tensor, b: torch.Tensor) -> float:
    """Real inner product ``Re <a, b>`` (the one of ``C^m`` seen as a real space)."""
    return float((a.conj() * b).real.sum()) if a.is_complex() else float((a * b).sum())


def test_builtins_registered():
    assert NAMES[:6] == ["denoise", "deblur", "sr", "sr-bicubic", "inpaint", "mri"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_adjoint_float32(name, device, gen):
    op = build(name, torch.float32, device)
    x = torch.randn((3, *op.x_shape), generator=gen).to(device)
    y = rand_y(op, 3, torch.float32, gen, device)
    lhs, rhs = inner(op.A(x), y), inner(x, op.A_adjoint(y))
    assert abs(lhs - rhs) <= 1e-5 * float(x.norm() * y.norm())


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name, gen):
    for dtype, cdtype in ((torch.float32, torch.complex64), (torch.float64, torch.complex128)):
        op = build(name, dtype)
        x = torch.rand((2, *op.x_shape), dtype=dtype, generator=gen)
        y = op.A(x)
        assert tuple(y.shape) == (2, *op.y_shape)
        assert y.dtype in (dtype, cdtype)
        for out in (op.A_adjoint(y), op.init(y), op.prox_data(x, y, 0.5), op.project(x, y)):
            assert out.shape == x.shape and out.dtype == dtype
    mri = build("mri")
    assert mri.A(torch.rand((1, *mri.x_shape), dtype=torch.float64)).dtype == torch.complex128


@pytest.mark.parametrize("name", NAMES)
def test_operator_follows_input_precision(name, gen):
    op = build(name, torch.float32)
    x = torch.rand((1, *op.x_shape), dtype=torch.float64, generator=gen)
    assert op.A_adjoint(op.A(x)).dtype == torch.float64


@pytest.mark.parametrize("name", NAMES)
def test_grad_data_matches_autograd(name, gen):
    op = build(name)
    x = torch.randn((2, *op.x_shape), dtype=torch.float64, generator=gen, requires_grad=True)
    y = rand_y(op, 2, torch.float64, gen)
    loss = 0.5 * (op.A(x) - y).abs().square().sum()
    (g,) = torch.autograd.grad(loss, x)
    assert torch.allclose(op.grad_data(x.detach(), y), g, atol=1e-10 * float(g.norm()))


@pytest.mark.parametrize("gamma", [1e-3, 0.7, 50.0])
@pytest.mark.parametrize("name", NAMES)
def test_prox_is_optimal(name, gamma, gen):
    op = build(name)
    z = torch.randn((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = rand_y(op, 2, torch.float64, gen)
    p = op.prox_data(z, y, gamma).requires_grad_(True)
    objective = 0.5 * (op.A(p) - y).abs().square().sum() + (p - z).square().sum() / (2 * gamma)
    (g,) = torch.autograd.grad(objective, p)
    scale = float(z.norm() / gamma + op.A_adjoint(y).norm())
    assert float(g.norm()) <= 1e-10 * scale


@pytest.mark.parametrize("name", NAMES)
def test_prox_per_item_gamma_and_limits(name, gen):
    op = build(name)
    z = torch.randn((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = rand_y(op, 2, torch.float64, gen)
    both = op.prox_data(z, y, torch.tensor([0.3, 4.0], dtype=torch.float64))
    assert torch.allclose(both[:1], op.prox_data(z[:1], y[:1], 0.3), atol=1e-12)
    assert torch.allclose(both[1:], op.prox_data(z[1:], y[1:], 4.0), atol=1e-12)
    assert torch.allclose(op.prox_data(z, y, 0.0), z)


@pytest.mark.parametrize("name", NAMES)
def test_project_eps0_reaches_the_data(name, gen):
    op = build(name)
    x0 = torch.rand((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = op.A(x0)
    x = torch.randn((2, *op.x_shape), dtype=torch.float64, generator=gen)
    p = op.project(x, y, 0.0)
    assert (op.norm(op.A(p) - y) <= 1e-8 * op.norm(y)).all()
    # a projection leaves points of the set where they are, and is idempotent
    assert torch.allclose(op.project(x0, y, 0.0), x0, atol=1e-8)
    assert torch.allclose(op.project(p, y, 0.0), p, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_project_eps_feasible_and_optimal(name, dtype, gen):
    op = build(name, dtype)
    x0 = torch.rand((2, *op.x_shape), dtype=dtype, generator=gen)
    y = op.measure(x0, 0.05, gen)
    x = op.init(y) + 0.3 * torch.randn(x0.shape, dtype=dtype, generator=gen)
    floor = op.norm(op.A(op.project(x, y, 0.0)) - y)
    eps = torch.maximum(1.5 * floor, 0.3 * op.norm(op.A(x) - y)).double()
    p = op.project(x, y, eps)
    res = op.norm(op.A(p) - y).double()
    assert (res <= eps * (1 + 1e-4)).all()
    if dtype == torch.float64:
        assert (res >= eps * (1 - 1e-3)).all()  # the constraint is active
        # KKT: x − p = μ Aᵀ(Ap − y) with μ ≥ 0
        g = op.A_adjoint(op.A(p) - y)
        cos = ((x - p) * g).flatten(1).sum(1) / (
            (x - p).flatten(1).norm(dim=1) * g.flatten(1).norm(dim=1)
        )
        assert (cos > 1 - 1e-8).all()
    # no feasible point is closer to x (feasible points: projections of perturbed x)
    for _ in range(3):
        q = op.project(x + 0.2 * torch.randn(x.shape, dtype=dtype, generator=gen), y, eps)
        assert (op.norm(op.A(q) - y).double() <= eps * (1 + 1e-4)).all()
        closer = (x - p).flatten(1).norm(dim=1) <= (x - q).flatten(1).norm(dim=1) * (1 + 1e-5)
        assert closer.all()
    # points inside the set do not move
    assert torch.allclose(op.project(p, y, eps * 1.01), p, atol=1e-6)


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


@pytest.mark.parametrize("name", NAMES)
def test_lipschitz_is_norm_squared(name):
    """The closed form agrees with (and bounds) the generic power iteration."""
    op = operators.build(name, shape=(1, 16, 12), dtype=torch.float64)
    power = LinearOperator.lipschitz(op)
    assert power <= op.lipschitz() * (1 + 1e-9)
    assert power == pytest.approx(op.lipschitz(), rel=3e-2)


@pytest.mark.parametrize("name", NAMES)
def test_init_is_a_fair_start(name, gen):
    """``init(Ax)`` is closer to a smooth ``x`` than 0 is."""
    op = build(name)
    _, h, w = op.x_shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    smooth = 0.5 + 0.3 * torch.cos(2 * math.pi * yy / h) * torch.sin(2 * math.pi * xx / w)
    x = smooth.double().expand(1, *op.x_shape)
    x0 = op.init(op.A(x))
    assert x0.shape == x.shape
    assert float((x0 - x).norm()) < 0.8 * float(x.norm())


@pytest.mark.parametrize("name", NAMES)
def test_measure_noise_only_where_measured(name, gen):
    op = build(name)
    x = torch.rand((1, *op.x_shape), dtype=torch.float64, generator=gen)
    assert torch.equal(op.measure(x, 0.0), op.A(x))
    y = op.measure(x, 0.1, gen)
    mask = op.support()
    diff = (y - op.A(x)).abs()
    if mask is not None:
        assert float(diff[..., ~mask].max()) == 0.0
        diff = diff[..., mask]
    assert float(diff.square().mean().sqrt()) > 0.05


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shapes_and_eps_are_refused(name):
    op = build(name)
    c, h, w = op.x_shape
    with pytest.raises(OperatorError, match="shape"):
        op.A(torch.zeros(1, c, h + 1, w, dtype=torch.float64))
    x = torch.zeros(1, c, h, w, dtype=torch.float64)
    with pytest.raises(OperatorError, match="eps"):
        op.project(x, op.A(x), -1.0)


def test_shape_must_be_chw():
    for name in NAMES:
        with pytest.raises(OperatorError, match=r"\(C, H, W\)"):
            operators.build(name, shape=(8, 8))
