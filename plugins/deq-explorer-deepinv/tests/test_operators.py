"""The core's LinearOperator contract over the bridged deepinv physics."""

from __future__ import annotations

import math

import pytest

pytest.importorskip(
    "deepinv",
    reason="deepinv is not installed: run these tests in the benchmark environment "
    "(bash benchmarks/env.sh; deepinv needs torch==2.14.1 torchvision==0.29.1)",
)
pytest.importorskip(
    "deq_explorer_deepinv",
    reason="the pack is not installed: pip install -e plugins/deq-explorer-deepinv",
)

import torch

from deq_explorer.operators.base import LinearOperator, OperatorError
from deq_explorer.registry import operators, plugin_errors

#: odd sizes where the physics allows them
SHAPES = {
    "dinv-blur": (2, 37, 31),
    "dinv-downsampling": (2, 36, 30),
    "dinv-inpainting": (2, 37, 31),
    "dinv-mri": (1, 37, 31),
    "dinv-tomography": (1, 16, 16),
}
NAMES = list(SHAPES)
#: operators whose prox is exact at γ = ∞ (closed form, or CG on a well-conditioned AᵀA)
EXACT_PINV = ["dinv-blur", "dinv-downsampling", "dinv-inpainting", "dinv-mri"]


#: options keeping the tests small (tomography: fewer angles than pixels, so y is in the range)
OPTIONS = {"dinv-tomography": ":angles=8"}


def build(name: str, dtype: torch.dtype = torch.float64) -> LinearOperator:
    return operators.build(name + OPTIONS.get(name, ""), shape=SHAPES[name], dtype=dtype)


def inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum())


def rand_y(op: LinearOperator, batch: int, dtype: torch.dtype, gen: torch.Generator):
    return torch.randn((batch, *op.y_shape), dtype=dtype, generator=gen)


def test_pack_registered_without_errors():
    assert "deepinv" not in plugin_errors()
    assert set(NAMES) <= set(operators.names())
    assert operators.entry("dinv-blur").source == "deepinv"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_adjoint(name, dtype, gen):
    op = build(name, torch.float32)  # the operator follows the input's precision
    x = torch.randn((3, *op.x_shape), generator=gen).to(dtype)
    y = rand_y(op, 3, dtype, gen)
    ax, aty = op.A(x), op.A_adjoint(y)
    assert ax.dtype == dtype and aty.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert abs(inner(ax, y) - inner(x, aty)) <= tol * float(x.norm() * y.norm())


@pytest.mark.parametrize("name", NAMES)
def test_shapes(name, gen):
    op = build(name)
    x = torch.rand((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = op.A(x)
    assert tuple(y.shape) == (2, *op.y_shape)
    for out in (op.A_adjoint(y), op.init(y), op.prox_data(x, y, 0.5)):
        assert out.shape == x.shape and out.dtype == torch.float64


@pytest.mark.parametrize("name", NAMES)
def test_grad_data_matches_autograd(name, gen):
    op = build(name)
    x = torch.randn((2, *op.x_shape), dtype=torch.float64, generator=gen, requires_grad=True)
    y = rand_y(op, 2, torch.float64, gen)
    (g,) = torch.autograd.grad(0.5 * (op.A(x) - y).square().sum(), x)
    assert torch.allclose(op.grad_data(x.detach(), y), g, atol=1e-10 * float(g.norm()))


@pytest.mark.parametrize("gamma", [1e-3, 0.7, 50.0])
@pytest.mark.parametrize("name", NAMES)
def test_prox_is_optimal(name, gamma, gen):
    op = build(name)
    z = torch.randn((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = rand_y(op, 2, torch.float64, gen)
    p = op.prox_data(z, y, gamma).requires_grad_(True)
    objective = 0.5 * (op.A(p) - y).square().sum() + (p - z).square().sum() / (2 * gamma)
    (g,) = torch.autograd.grad(objective, p)
    scale = float(z.norm() / gamma + op.A_adjoint(y).norm())
    assert float(g.norm()) <= 1e-9 * scale


@pytest.mark.parametrize("name", NAMES)
def test_prox_per_item_gamma_and_limits(name, gen):
    op = build(name)
    z = torch.randn((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = rand_y(op, 2, torch.float64, gen)
    both = op.prox_data(z, y, torch.tensor([0.3, 4.0], dtype=torch.float64))
    assert torch.allclose(both[:1], op.prox_data(z[:1], y[:1], 0.3), atol=1e-10)
    assert torch.allclose(both[1:], op.prox_data(z[1:], y[1:], 4.0), atol=1e-10)
    assert torch.equal(op.prox_data(z, y, 0.0), z) or torch.allclose(
        op.prox_data(z, y, 0.0), z, atol=1e-14
    )
    with pytest.raises(OperatorError, match="gamma"):
        op.prox_data(z, y, -1.0)


@pytest.mark.parametrize("name", EXACT_PINV)
def test_project_eps0_reaches_the_data(name, gen):
    op = build(name)
    x0 = torch.rand((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = op.A(x0)
    x = torch.randn((2, *op.x_shape), dtype=torch.float64, generator=gen)
    p = op.project(x, y, 0.0)
    assert (op.norm(op.A(p) - y) <= 1e-8 * op.norm(y)).all()
    assert torch.allclose(op.project(p, y, 0.0), p, atol=1e-8)
    # the nearest such point: x − p is orthogonal to the null space of A (lies in range Aᵀ)
    q = op.project(x + 0.1 * torch.randn(x.shape, dtype=torch.float64, generator=gen), y, 0.0)
    assert ((x - p).flatten(1).norm(dim=1) <= (x - q).flatten(1).norm(dim=1) + 1e-9).all()


@pytest.mark.parametrize("name", NAMES)
def test_project_eps_feasible_and_active(name, gen):
    op = build(name)
    x0 = torch.rand((2, *op.x_shape), dtype=torch.float64, generator=gen)
    y = op.measure(x0, 0.05, gen)
    x = op.init(y) + 0.3 * torch.randn(x0.shape, dtype=torch.float64, generator=gen)
    eps = 0.5 * op.norm(op.A(x) - y)
    p = op.project(x, y, eps)
    res = op.norm(op.A(p) - y)
    assert (res <= eps * (1 + 1e-6)).all() and (res >= eps * (1 - 1e-3)).all()
    # KKT: x − p = μ Aᵀ(Ap − y), μ ≥ 0
    g = op.A_adjoint(op.A(p) - y)
    d = (x - p).flatten(1)
    cos = (d * g.flatten(1)).sum(1) / (d.norm(dim=1) * g.flatten(1).norm(dim=1))
    assert (cos > 1 - 1e-6).all()


@pytest.mark.parametrize("name", NAMES)
def test_lipschitz_and_init(name):
    op = build(name)
    assert 0 < op.lipschitz() <= 1 + 1e-6  # all these physics have ‖A‖ ≤ 1
    _, h, w = op.x_shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    smooth = 0.5 + 0.3 * torch.cos(2 * math.pi * yy / h) * torch.sin(2 * math.pi * xx / w)
    x = smooth.double().expand(1, *op.x_shape)
    assert float((op.init(op.A(x)) - x).norm()) < 0.8 * float(x.norm())


@pytest.mark.parametrize("name", ["dinv-inpainting", "dinv-mri"])
def test_measure_noise_only_where_measured(name, gen):
    op = build(name)
    x = torch.rand((1, *op.x_shape), dtype=torch.float64, generator=gen)
    y = op.measure(x, 0.1, gen)
    mask = op.support()
    assert mask.shape == op.x_shape[1:] and 0 < float(mask.double().mean()) < 1
    diff = (y - op.A(x)).abs()
    assert float(diff[..., ~mask].max()) == 0.0
    assert float(diff[..., mask].square().mean().sqrt()) > 0.05


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shapes_are_refused(name):
    op = build(name)
    c, h, w = op.x_shape
    with pytest.raises(OperatorError, match="shape"):
        op.A(torch.zeros(1, c, h + 1, w, dtype=torch.float64))


@pytest.mark.parametrize(
    "spec, shape, match",
    [
        ("dinv-downsampling:factor=4", (1, 30, 30), "divide"),
        ("dinv-downsampling:filter=box", (1, 32, 32), "filter"),
        ("dinv-mri", (3, 32, 32), "single-channel"),
        ("dinv-mri:pattern=spiral", (1, 32, 32), "pattern"),
        ("dinv-tomography", (1, 32, 30), "square"),
        ("dinv-inpainting:p=0", (1, 8, 8), "fraction"),
        ("dinv-blur:sigma=9", (1, 16, 16), "does not fit"),
    ],
)
def test_bad_options_are_explained(spec, shape, match):
    with pytest.raises(OperatorError, match=match):
        operators.build(spec, shape=shape)


def test_blur_agrees_with_the_core_deblur(gen):
    """Same Gaussian, same circular boundary: deepinv's BlurFFT equals the core's deblur."""
    from deepinv.physics.functional import gaussian_blur

    from deq_explorer.operators.deblur import Deblur

    shape = (1, 33, 29)
    ours = operators.build("deblur:sigma=1.3", shape=shape, dtype=torch.float64)
    theirs = operators.build("dinv-blur:sigma=1.3", shape=shape, dtype=torch.float64)
    x = torch.rand((1, *shape), dtype=torch.float64, generator=gen)
    assert isinstance(ours, Deblur)
    assert gaussian_blur(sigma=(1.3, 1.3)).sum() == pytest.approx(1.0, rel=1e-6)
    rel = float((ours.A(x) - theirs.A(x)).norm() / ours.A(x).norm())
    assert rel < 1e-2  # kernels are truncated differently; the models agree to the truncation
