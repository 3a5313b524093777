"""Every registered operator × solver × accelerator runs and keeps shapes (odd sizes)."""

import pytest
import torch

from deq_explorer.fixedpoint import Status, StopRule, solve
from deq_explorer.operators.needs import image_needs
from deq_explorer.registry import accelerators, operators, priors, solvers
from deq_explorer.testing import check_solver


@pytest.mark.parametrize("solver", solvers.names())
@pytest.mark.parametrize("operator", operators.names())
def test_contract(operator, solver):
    check_solver(solver, operator)


@pytest.mark.parametrize("accel", accelerators.names())
@pytest.mark.parametrize("solver", solvers.names())
@pytest.mark.parametrize("operator", operators.names())
def test_runs_on_every_operator(operator, solver, accel):
    op = operators.build(operator, shape=image_needs(operator).example)
    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, *op.x_shape), generator=g)
    y = op.measure(x, 0.01, g)
    fp = solvers.build(solver, op=op, prior=priors.build("tv:iters=5"), y=y)
    sol = solve(fp, accelerators.build(accel), StopRule(max_iter=3, tol=0.0), reference=x)
    assert sol.status is Status.MAX_ITER
    assert sol.x.shape == x.shape and sol.x.dtype == x.dtype
    assert bool(torch.isfinite(sol.x).all())
    assert all(v is not None and v == v for v in sol.history["ssim"])


@pytest.mark.parametrize("solver", solvers.names())
def test_float64(solver):
    shape = (1, 18, 30)
    op = operators.build("sr:scale=3", shape=shape, dtype=torch.float64)
    x = torch.rand((1, *shape), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fp = solvers.build(solver, op=op, prior=priors.build("tv:iters=5"), y=op.A(x))
    sol = solve(fp, accelerators.build("anderson"), StopRule(max_iter=3, tol=0.0))
    assert sol.x.dtype == torch.float64
