"""The ct operator: exact adjoint, normalisation, FBP, prox, projection, options."""

import math

import pytest
import torch
from deq_explorer_ct import CG, CT, ct, parallel_beam, register
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from deq_explorer.operators.base import OperatorError
from deq_explorer.registry import operators
from deq_explorer.testing import check_operator

SHAPE = (2, 31, 29)  # odd, non-square, two channels


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def phantom(n):
    """Shepp–Logan phantom ``(1, 1, n, n)`` in [0, 1]."""
    img = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)
    return torch.tensor(img, dtype=torch.float32)[None, None].clamp(0, 1)


def psnr(x, ref):
    return 10 * math.log10(1 / float(((x - ref) ** 2).mean()))


@pytest.mark.parametrize(
    "spec",
    [
        {"angles": 17},
        {"angles": 1},
        {"preset": "sparse-view"},
        {"preset": "limited-angle"},
        {"angles": 8, "arc": 360.0},
    ],
)
def test_adjoint_is_exact_float32(spec):
    op = ct(SHAPE, **spec)
    x = torch.randn(3, *SHAPE, generator=_gen(1))
    y = torch.randn(3, *op.y_shape, generator=_gen(2))
    lhs, rhs = (op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum()
    assert abs(float(lhs - rhs)) <= 1e-5 * float(x.norm() * y.norm())
    assert op.A(x).dtype == torch.float32


def test_core_contract(installed_pack):
    if "ct" not in operators.names():  # run from the source tree, not installed
        installed_pack(register, "ct")
    check_operator("ct:angles=9", (2, 17, 15), exact_pinv=False)


def test_shapes_channels_and_batch_items_are_independent():
    op = ct(SHAPE, angles=12)
    assert op.y_shape == (2, 12, op.geometry.detectors)
    assert op.geometry.detectors % 2 == 1
    x = torch.randn(3, *SHAPE, generator=_gen(3), dtype=torch.float64)
    y = op.A(x)
    assert y.shape == (3, *op.y_shape)
    single = op.A(x[1:2, 1:2].expand(1, 2, 31, 29).contiguous())
    assert torch.allclose(y[1, 1], single[0, 0])
    with pytest.raises(OperatorError, match=r"image must have shape \(B, 2, 31, 29\)"):
        op.A(torch.zeros(1, 2, 29, 31))
    with pytest.raises(OperatorError, match="sinogram"):
        op.A_adjoint(torch.zeros(1, 2, 12, 3))


def test_line_integrals_and_unit_norm():
    op = ct((1, 31, 29), angles=4, dtype=torch.float64)
    # a constant image: the 0° view's rays run along the columns (the detector
    # axis is x), so the central ray crosses all 31 rows
    y = op.A(torch.ones(1, 1, 31, 29, dtype=torch.float64)) / op.scale
    centre = (op.geometry.detectors - 1) // 2
    assert float(y[0, 0, 0, centre]) == pytest.approx(31.0, abs=1e-9)
    # the 90° view integrates along the rows: 29 pixels
    y90 = ct((1, 31, 29), angles=2, arc=180.0, dtype=torch.float64).A(
        torch.ones(1, 1, 31, 29, dtype=torch.float64)
    )
    assert float(y90[0, 0, 1, centre] / y90[0, 0, 0, centre]) == pytest.approx(29 / 31, rel=1e-9)
    # ‖A‖₂ = 1 by power iteration from a random start
    v = torch.randn(1, 1, 31, 29, generator=_gen(4), dtype=torch.float64)
    for _ in range(300):
        v = op.A_adjoint(op.A(v))
        v = v / v.norm()
    assert float(op.A(v).norm()) == pytest.approx(1.0, rel=1e-6)


def test_autograd_backward_is_the_adjoint():
    op = ct(SHAPE, angles=9)
    x = torch.randn(2, *SHAPE, generator=_gen(5), requires_grad=True)
    y = torch.randn(2, *op.y_shape, generator=_gen(6))
    (g,) = torch.autograd.grad((op.A(x) * y).sum(), x)
    assert torch.equal(g, op.A_adjoint(y))


def test_fbp_reconstructs_the_phantom():
    x = phantom(64)
    full = ct((1, 64, 64), angles=180)
    fbp = full.init(full.A(x))
    assert psnr(fbp, x) > 20.0
    # with a scale-free check: FBP is not merely a rescaled back-projection
    bp = full.A_adjoint(full.A(x))
    assert psnr(bp * (x * bp).sum() / (bp * bp).sum(), x) < psnr(fbp, x) - 5
    # fewer views or a short arc lose quality, as they must
    sparse = ct((1, 64, 64), preset="sparse-view")
    limited = ct((1, 64, 64), angles=90, arc=120.0)
    assert psnr(sparse.init(sparse.A(x)), x) < psnr(fbp, x)
    assert psnr(limited.init(limited.A(x)), x) < psnr(fbp, x) - 3


@pytest.mark.parametrize("gamma", [1e-3, 0.7, 50.0])
def test_prox_is_optimal_float64(gamma):
    op = ct(SHAPE, angles=13, dtype=torch.float64)  # the default rule: tol 1e-12 in float64
    z = torch.randn(2, *SHAPE, generator=_gen(7), dtype=torch.float64)
    y = torch.randn(2, *op.y_shape, generator=_gen(8), dtype=torch.float64)
    x = op.prox_data(z, y, gamma)
    # first-order optimality: Aᵀ(Ax − y) + (x − z)/γ = 0
    grad = op.A_adjoint(op.A(x) - y) + (x - z) / gamma
    assert float(grad.norm()) <= 1e-10 * float(z.norm() / gamma + op.A_adjoint(y).norm())

    def objective(u):
        return 0.5 * ((op.A(u) - y) ** 2).sum() + ((u - z) ** 2).sum() / (2 * gamma)

    for seed in range(3):
        other = x + 1e-3 * torch.randn(x.shape, generator=_gen(seed), dtype=torch.float64)
        assert objective(other) > objective(x)
    # a warm start at the answer gives the same answer
    assert torch.allclose(op.prox_data(z, y, gamma, x0=x), x, atol=1e-10)


def test_prox_per_item_gamma_zero_and_infinity():
    shape = (1, 21, 19)  # small: the least-squares system is ill-conditioned
    op = CT(shape, parallel_beam(21, 19, 40, 180.0), cg=CG(max_iter=3000), dtype=torch.float64)
    z = torch.randn(3, *shape, generator=_gen(18), dtype=torch.float64)
    y = torch.randn(3, *op.y_shape, generator=_gen(19), dtype=torch.float64)
    mixed = op.prox_data(z, y, torch.tensor([0.3, 0.0, math.inf], dtype=torch.float64))
    assert torch.allclose(mixed[:1], op.prox_data(z[:1], y[:1], 0.3), atol=1e-12)
    assert torch.equal(mixed[1], z[1])  # γ = 0: nothing moves
    # γ = ∞: a least-squares solution (the normal equations hold)
    normal = op.A_adjoint(op.A(mixed[2:]) - y[2:])
    assert float(normal.norm()) <= 1e-8 * float(op.A_adjoint(y[2:]).norm())


def test_prox_default_rule_is_accurate_float32():
    op = ct(SHAPE, angles=20)
    z = torch.rand(1, *SHAPE, generator=_gen(9))
    y = op.A(torch.rand(1, *SHAPE, generator=_gen(10)))
    x = op.prox_data(z, y, 1.0)
    grad = op.A_adjoint(op.A(x) - y) + (x - z)
    assert float(grad.norm()) <= 1e-4 * float(z.norm())
    with pytest.raises(OperatorError, match="gamma must be >= 0"):
        op.prox_data(z, y, -1.0)


def test_projection_eps0_reaches_consistent_data():
    op = CT(
        SHAPE,
        parallel_beam(31, 29, 11, 180.0),
        cg=CG(tol=1e-12, max_iter=1000),
        dtype=torch.float64,
    )
    x_true = torch.rand(2, *SHAPE, generator=_gen(11), dtype=torch.float64)
    y = op.A(x_true)
    x = torch.rand(2, *SHAPE, generator=_gen(12), dtype=torch.float64)
    u = op.project(x, y, 0.0)
    assert torch.all(op.norm(op.A(u) - y) <= 1e-4 * op.norm(y))
    # the correction is least-norm: u − x lies in the row space, so it is ⟂ to x_true − u
    # (x_true − u is in the null space up to the CG error)
    cos = (u - x).flatten(1) @ (x_true - u).flatten(1).T
    assert float(cos.diagonal().abs().max()) <= 1e-3 * float((u - x).norm() * (x_true - u).norm())
    # already-feasible items are returned as they are
    assert torch.equal(op.project(x_true, y, 1e-6), x_true)


def test_projection_eps_positive_is_feasible_and_optimal():
    op = ct(SHAPE, angles=15, dtype=torch.float64)
    x_true = torch.rand(2, *SHAPE, generator=_gen(13), dtype=torch.float64)
    y = op.A(x_true) + 0.05 * torch.randn(2, *op.y_shape, generator=_gen(14), dtype=torch.float64)
    x = torch.rand(2, *SHAPE, generator=_gen(15), dtype=torch.float64)
    eps = 0.5 * float(op.norm(op.A(x) - y).min())
    u = op.project(x, y, eps)
    res = op.norm(op.A(u) - y)
    assert torch.all(res <= eps) and torch.all(res >= 0.99 * eps)  # feasible, on the boundary
    # KKT: x − u = λ Aᵀ(Au − y) with λ > 0
    d, g = (x - u).flatten(1), op.A_adjoint(op.A(u) - y).flatten(1)
    cos = (d * g).sum(1) / (d.norm(dim=1) * g.norm(dim=1))
    assert torch.all(cos > 0.999)
    with pytest.raises(OperatorError, match="eps"):
        op.project(x, y, -1.0)


def test_projection_with_eps_below_the_noise_floor_gives_least_squares():
    # more data than pixels; a tight rule, as the least-squares system is ill-conditioned
    op = CT(
        (1, 21, 19),
        parallel_beam(21, 19, 40, 180.0),
        cg=CG(tol=1e-9, max_iter=3000),
        dtype=torch.float64,
    )
    y = torch.randn(1, *op.y_shape, generator=_gen(16), dtype=torch.float64)  # not in range(A)
    x = torch.zeros(1, 1, 21, 19, dtype=torch.float64)
    u = op.project(x, y, 1e-3)
    assert torch.allclose(u, op.prox_data(x, y, math.inf))
    # u minimises ‖Au − y‖ (normal equations) up to the CG tolerance
    assert float(op.A_adjoint(op.A(u) - y).norm()) <= 1e-8 * float(op.A_adjoint(y).norm())


def test_presets_and_options():
    assert ct(SHAPE, preset="sparse-view").y_shape[1] == 30
    lim = ct(SHAPE, preset="limited-angle")
    assert math.degrees(lim.geometry.angles[-1] + lim.geometry.angle_step) == pytest.approx(120)
    assert ct(SHAPE, preset="sparse-view", angles=45).y_shape[1] == 45  # explicit options win
    for kwargs, message in [
        ({"preset": "few"}, "unknown preset 'few'; known presets: sparse-view, limited-angle"),
        ({"angles": 0}, "angles must be a whole number >= 1"),
        ({"arc": 0.0}, r"arc must be in \(0, 360\]"),
        ({"arc": 400.0}, r"arc must be in \(0, 360\]"),
    ]:
        with pytest.raises(OperatorError, match=message):
            ct(SHAPE, **kwargs)
    with pytest.raises(OperatorError, match="use fewer views or a smaller"):
        ct((1, 1024, 1024), angles=180)
    with pytest.raises(OperatorError, match="at least 2×2"):
        ct((1, 1, 9))
    with pytest.raises(OperatorError, match=r"shape must be \(C, H, W\)"):
        ct((9, 9))


def test_other_dtypes_are_served():
    op = ct(SHAPE, angles=7)  # built for float32
    x = torch.randn(1, *SHAPE, generator=_gen(17), dtype=torch.float64)
    assert op.A(x).dtype == torch.float64
    assert torch.allclose(op.A(x).float(), op.A(x.float()), atol=1e-5)
