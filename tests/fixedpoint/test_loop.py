import itertools
import math

import pytest
import torch

from deq_explorer.fixedpoint import FixedPointMap, Iterate, Status, StopRule, iterate, solve
from deq_explorer.metrics import psnr, ssim


@pytest.fixture
def full(mask_operator):
    """An identity operator (full mask) and a measurement ``(1, 1, 12, 13)``."""
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 1, 12, 13, generator=g)
    return mask_operator(torch.ones(1, 12, 13)), y


@pytest.fixture
def linear_map(make_linear_map):
    return make_linear_map


def scaled_map(op, y, factor):
    return FixedPointMap(T=lambda z: factor * z, z0=y.clone(), image=lambda z: z, op=op, y=y)


def test_converges_and_reports_plain_residual(full, linear_map):
    op, y = full
    fp = linear_map(op, y, contraction=0.5)
    items = list(iterate(fp, rule=StopRule(max_iter=100, tol=1e-6)))
    assert [it.k for it in items] == list(range(1, len(items) + 1))
    assert items[-1].status is Status.CONVERGED and items[-1].residual < 1e-6
    assert all(it.status is Status.RUNNING for it in items[:-1])
    assert all(it.residual >= 1e-6 for it in items[:-1])
    # for plain iteration the residual of step k+1 is ‖x_{k+1} − x_k‖/‖x_k‖
    for a, b in itertools.pairwise(items):
        expected = float((b.x - a.x).norm() / a.x.norm())
        assert b.residual == pytest.approx(expected, rel=1e-4)
        assert torch.allclose(b.change, (b.x - a.x).abs())
    assert items[-1].x.shape == y.shape and items[-1].psnr is None and items[-1].ssim is None
    # consistency ‖Ax − y‖/‖y‖ of the fixed point x = 2Ky... computed directly
    x = items[-1].x
    assert items[-1].consistency == pytest.approx(float((x - y).norm() / y.norm()), rel=1e-5)


def test_max_iter(full, linear_map):
    op, y = full
    sol = solve(linear_map(op, y), rule=StopRule(max_iter=7, tol=0.0))
    assert sol.status is Status.MAX_ITER and sol.iterations == 7
    assert all(len(v) == 7 for v in sol.history.values())
    assert sol.history["psnr"] == [None] * 7
    assert sol.history["seconds"] == sorted(sol.history["seconds"])


def test_stop_request_is_honoured_after_the_current_iteration(full, linear_map):
    op, y = full
    calls = []

    def stop():
        calls.append(1)
        return len(calls) >= 3

    items = list(iterate(linear_map(op, y), rule=StopRule(max_iter=50, tol=0.0), stop=stop))
    assert [it.status for it in items] == [Status.RUNNING] * 2 + [Status.STOPPED]
    assert solve(linear_map(op, y), stop=lambda: True).iterations == 1


@pytest.mark.parametrize("factor", [10.0, float("nan")])
def test_divergence_keeps_last_finite_image(full, factor):
    op, y = full
    items = list(iterate(scaled_map(op, y, factor), rule=StopRule(max_iter=100, diverge_at=1e6)))
    last = items[-1]
    assert last.status is Status.DIVERGED
    assert bool(torch.isfinite(last.x).all()) and math.isfinite(last.consistency)
    if math.isnan(factor):
        assert last.k == 1 and torch.equal(last.x, y)
    else:
        assert last.k == 7  # 10**6 · max|y| < 1e6 < 10**7 · max|y| for max|y| ∈ (0.1, 1)
        assert float(last.x.abs().max()) <= 1e6
        assert torch.equal(last.x, items[-2].x)


def test_reference_metrics(full, linear_map, mask_operator):
    op, y = full
    ref = y.flip(-1)
    sol = solve(linear_map(op, y), rule=StopRule(max_iter=3, tol=0.0), reference=ref)
    assert sol.history["psnr"][-1] == pytest.approx(psnr(sol.x, ref), abs=1e-9)
    assert sol.history["ssim"][-1] == pytest.approx(ssim(sol.x, ref), abs=1e-9)
    tiny = mask_operator(torch.ones(1, 5, 6))
    y5 = torch.rand(1, 1, 5, 6)
    last = solve(linear_map(tiny, y5), rule=StopRule(max_iter=2), reference=y5)
    assert last.history["psnr"][-1] is not None and last.history["ssim"][-1] is None


def test_grad_mode_of_the_caller_is_untouched(full):
    op, y = full
    w = torch.ones(1, requires_grad=True)
    fp = FixedPointMap(T=lambda z: 0.5 * z * w + y, z0=y, image=lambda z: z, op=op, y=y)
    for it in iterate(fp, rule=StopRule(max_iter=3)):
        assert isinstance(it, Iterate) and not it.x.requires_grad
        assert torch.is_grad_enabled()


def test_bad_arguments(full, linear_map):
    op, y = full
    with pytest.raises(ValueError, match="max_iter"):
        solve(linear_map(op, y), rule=StopRule(max_iter=0))
    with pytest.raises(ValueError, match="reference"):
        solve(linear_map(op, y), reference=y[..., :5])


def test_metrics_every_skips_metrics_but_not_the_residual(full, linear_map):
    op, y = full
    ref = y.flip(-1)
    every = list(iterate(linear_map(op, y), rule=StopRule(max_iter=7, tol=0.0), reference=ref))
    sparse = list(
        iterate(
            linear_map(op, y), rule=StopRule(max_iter=7, tol=0.0), reference=ref, metrics_every=3
        )
    )
    assert [it.k for it in sparse] == list(range(1, 8))
    for a, b in zip(every, sparse, strict=True):
        assert b.residual == a.residual and torch.equal(b.x, a.x)
        if b.k in (3, 6, 7):  # multiples of 3 and the last iterate
            assert (b.consistency, b.psnr, b.ssim) == (a.consistency, a.psnr, a.ssim)
            assert b.psnr == pytest.approx(psnr(b.x, ref), abs=1e-9)
        else:
            assert b.consistency is None and b.psnr is None and b.ssim is None
    # a run that converges off the grid still reports its final metrics
    sol = solve(linear_map(op, y, contraction=0.5), rule=StopRule(tol=1e-6), metrics_every=1000)
    assert sol.status is Status.CONVERGED and sol.history["consistency"][:-1] == [None] * (
        sol.iterations - 1
    )
    x = sol.x
    assert sol.history["consistency"][-1] == pytest.approx(
        float((x - y).norm() / y.norm()), rel=1e-5
    )


@pytest.mark.parametrize("every", [0, -2, 1.5, True])
def test_bad_metrics_every(full, linear_map, every):
    op, y = full
    with pytest.raises(ValueError, match="metrics_every"):
        solve(linear_map(op, y), metrics_every=every)
