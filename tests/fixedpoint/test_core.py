"""One fixed-point core: the monitoring loop, the DEQ forward pass and fixed_point agree."""

import pytest
import torch

from deq_explorer.deq import DEQ, Forward
from deq_explorer.fixedpoint import (
    Criterion,
    FixedPointMap,
    Status,
    StopRule,
    fixed_point,
    iterate,
    steps,
)
from deq_explorer.fixedpoint.accelerators import Anderson, Nesterov
from deq_explorer.fixedpoint.core import mse_residual, relative_residual


def two_rate_map(mask_operator, rates=(0.5, 0.9)) -> FixedPointMap:
    """``T(z)_b = c_b · K z_b + y_b``: two items contracting at different rates."""
    g = torch.Generator().manual_seed(1)
    y = torch.rand(2, 1, 9, 11, generator=g, dtype=torch.float64)
    c = torch.tensor(rates, dtype=torch.float64).view(2, 1, 1, 1)
    k = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    kernel = (k[:, None] * k[None, :]).view(1, 1, 3, 3)

    def T(z):
        padded = torch.nn.functional.pad(z, (1, 1, 1, 1), mode="circular")
        return c * torch.nn.functional.conv2d(padded, kernel) + y

    op = mask_operator(torch.ones(1, 9, 11, dtype=torch.float64))
    return FixedPointMap(T=T, z0=torch.zeros_like(y), image=lambda z: z, op=op, y=y)


@pytest.mark.parametrize("accel", [None, Anderson(m=3), Nesterov()], ids=["plain", "and", "nes"])
def test_every_entry_point_runs_the_same_iterations(mask_operator, accel) -> None:
    fp = two_rate_map(mask_operator)
    rule = StopRule(max_iter=200, tol=1e-8)
    monitored = list(iterate(fp, accel, rule))
    core = list(steps(fp.T, fp.z0, accel, rule))
    end = fixed_point(fp.T, fp.z0, accelerator=accel, rule=rule)
    with torch.no_grad():
        z, stats = DEQ(forward=Forward(accelerator=accel, rule=rule))(fp)
    assert [it.residual for it in monitored] == [s.residual for s in core]
    assert all(torch.equal(it.x, s.z_next) for it, s in zip(monitored, core, strict=True))
    assert monitored[-1].status is core[-1].status is end.status is stats.forward_status
    assert monitored[-1].status is Status.CONVERGED
    assert len(monitored) == end.iterations == stats.forward_iters
    assert end.residual == monitored[-1].residual == stats.forward_residual
    assert torch.equal(end.z, monitored[-1].x) and torch.equal(z, end.z)


def test_the_slowest_item_decides(mask_operator) -> None:
    """The largest per-item residual is the one compared with tol, in every entry point."""
    rule = StopRule(max_iter=500, tol=1e-8)
    both = fixed_point(two_rate_map(mask_operator).T, torch.zeros(2, 1, 9, 11).double(), rule=rule)
    slow = two_rate_map(mask_operator, rates=(0.9, 0.9))
    fast = two_rate_map(mask_operator, rates=(0.5, 0.5))
    n_slow = fixed_point(slow.T, slow.z0, rule=rule).iterations
    n_fast = fixed_point(fast.T, fast.z0, rule=rule).iterations
    assert n_fast < n_slow == both.iterations


def test_stop_is_polled_after_an_iteration(mask_operator) -> None:
    fp = two_rate_map(mask_operator)
    polls = []
    rule = StopRule(max_iter=50, tol=0)
    end = fixed_point(fp.T, fp.z0, rule=rule, stop=lambda: polls.append(1) or len(polls) == 2)
    assert end.status is Status.STOPPED and end.iterations == 2
    its = list(iterate(fp, rule=rule, stop=lambda: True))
    assert [it.status for it in its] == [Status.STOPPED]


def test_divergence_keeps_the_last_finite_state() -> None:
    z0 = torch.ones(2, 3, dtype=torch.float64)
    rule = StopRule(max_iter=100, tol=0, diverge_at=1e3)
    trail = list(steps(lambda z: 4 * z, z0, rule=rule))
    assert trail[-1].status is Status.DIVERGED and len(trail) == 5  # 4⁵ > 1e3 ≥ 4⁴
    assert torch.equal(trail[-1].z_next, trail[-1].z) and float(trail[-1].z.max()) == 256
    nan = list(steps(lambda z: z * float("nan"), z0, rule=rule))
    assert [s.status for s in nan] == [Status.DIVERGED] and torch.equal(nan[0].z_next, z0)


def test_residuals_are_per_item() -> None:
    z = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    Tz = torch.tensor([[1.5, 0.0], [3.0, 4.0], [2.0, 0.0]], dtype=torch.float64)
    assert relative_residual(z, Tz).tolist() == [0.5, 1.0, 0.0]  # a zero item: against ‖T(z)‖
    assert mse_residual(z, Tz).tolist() == [0.125, 12.5, 0.0]
    assert relative_residual(torch.zeros(3), torch.zeros(3)).tolist() == [0.0]


@pytest.mark.parametrize(
    "rule", [StopRule(max_iter=0), StopRule(tol=-1.0), StopRule(diverge_at=0.0)]
)
def test_bad_rules_are_refused_by_every_entry_point(mask_operator, rule) -> None:
    fp = two_rate_map(mask_operator)
    with pytest.raises(ValueError, match=r"max_iter|tol"):
        fixed_point(fp.T, fp.z0, rule=rule)
    with pytest.raises(ValueError, match=r"max_iter|tol"):
        next(iterate(fp, rule=rule))


def test_the_change_criterion_stops_on_the_iterate_change(mask_operator) -> None:
    fp = two_rate_map(mask_operator)
    plain = StopRule(max_iter=300, tol=1e-6)
    by_change = StopRule(max_iter=300, tol=1e-6, criterion=Criterion.CHANGE)
    a, b = fixed_point(fp.T, fp.z0, rule=plain), fixed_point(fp.T, fp.z0, rule=by_change)
    assert a.iterations == b.iterations and torch.equal(a.z, b.z)  # plain: change = residual
    trail = list(steps(fp.T, fp.z0, Anderson(m=3), by_change))
    assert trail[-1].status is Status.CONVERGED and trail[-1].change < 1e-6
    for s in trail:
        assert s.change == pytest.approx(float(relative_residual(s.z, s.z_next).max()))


def test_a_residual_that_stops_falling_is_reported_stalled() -> None:
    z0 = torch.ones(1, 4, dtype=torch.float64)
    flip = lambda z: -z  # noqa: E731 - residual 2 forever, never diverges
    rule = StopRule(max_iter=1000, tol=1e-4, patience=20)
    trail = list(steps(flip, z0, rule=rule))
    assert trail[-1].status is Status.STALLED and len(trail) == 21  # best set at k = 1
    assert list(steps(flip, z0, rule=StopRule(max_iter=30, tol=0, patience=20)))[-1].status is (
        Status.MAX_ITER
    )  # tol = 0 runs the whole budget
    slow = lambda z: 0.5 * z + 1  # noqa: E731 - the residual halves every step: never stalled
    assert fixed_point(slow, z0, rule=StopRule(tol=1e-12, patience=2)).status is Status.CONVERGED


def test_the_solution_reports_the_observed_contraction_rate(mask_operator) -> None:
    from deq_explorer.fixedpoint import solve
    from deq_explorer.fixedpoint.loop import contraction_rate

    for c in (0.5, 0.9):
        fp = two_rate_map(mask_operator, rates=(c, c))
        sol = solve(fp, rule=StopRule(max_iter=500, tol=1e-9))
        assert sol.rate == pytest.approx(c, abs=2e-3)  # the DC mode of K contracts at c
    assert contraction_rate([1.0]) is None and contraction_rate([1.0, None, 4.0]) == 4.0
    assert contraction_rate([2.0, 2.0, 2.0]) == 1.0  # not falling: not converging
