import pytest
import torch

from deq_explorer.fixedpoint import Status, StopRule, solve
from deq_explorer.fixedpoint.accelerators import Anderson, Nesterov, NoAcceleration
from deq_explorer.registry import accelerators, priors, solvers


@pytest.fixture
def contraction(mask_operator, make_linear_map):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 1, 16, 15, generator=g, dtype=torch.float64)
    return make_linear_map(mask_operator(torch.ones(1, 16, 15)), y, contraction=0.95)


def _iterations(fp, acc, tol):
    sol = solve(fp, acc, StopRule(max_iter=2000, tol=tol))
    assert sol.status is Status.CONVERGED
    return sol


def test_anderson_and_nesterov_beat_plain_iteration_on_a_linear_contraction(contraction):
    plain = _iterations(contraction, None, 1e-8)
    anderson = _iterations(contraction, Anderson(), 1e-8)
    nesterov = _iterations(contraction, Nesterov(), 1e-8)
    assert plain.iterations > 250  # rate 0.95: ~log(1e-8)/log(0.95) steps
    assert anderson.iterations < plain.iterations / 3
    assert nesterov.iterations < plain.iterations / 2
    # all reach the same fixed point
    assert torch.allclose(anderson.x, plain.x, atol=1e-6)
    assert torch.allclose(nesterov.x, plain.x, atol=1e-6)


def test_anderson_and_nesterov_beat_plain_iteration_on_pnp_pgm_tv(problem):
    op, y, _ = problem
    prior = priors.build("tv:weight=0.05,iters=30")
    runs = {}
    for name in ("none", "anderson", "nesterov"):
        fp = solvers.build("pnp-pgm", op=op, prior=prior, y=y)
        runs[name] = _iterations(fp, accelerators.build(name), 1e-5)
    assert runs["anderson"].iterations < runs["none"].iterations / 2
    assert runs["nesterov"].iterations < runs["none"].iterations / 2
    for name in ("anderson", "nesterov"):
        assert float((runs[name].x - runs["none"].x).abs().max()) < 5e-3


def _run(acc, T, z0, steps):
    z, state = z0, acc.init(z0)
    for _ in range(steps):
        z, state = acc.step(z, T(z), state)
    return z


def test_anderson_acts_per_batch_item(contraction):
    both = _run(Anderson(m=4), contraction.T, contraction.z0, 6)
    first = lambda z: contraction.T(torch.cat([z, z]))[:1]  # noqa: E731 - item 0 of T
    alone = _run(Anderson(m=4), first, contraction.z0[:1], 6)
    assert torch.allclose(both[:1], alone, atol=1e-12)
    assert not torch.allclose(both[:1], both[1:])


def test_anderson_memory_one_is_damped_iteration(contraction):
    T, z0 = contraction.T, contraction.z0 + 0.3
    assert torch.allclose(_run(Anderson(m=1), T, z0, 3), _run(NoAcceleration(), T, z0, 3))
    z1 = _run(Anderson(m=1, beta=0.5), T, z0, 1)
    assert torch.allclose(z1, 0.5 * T(z0) + 0.5 * z0)


def test_anderson_falls_back_at_an_exact_fixed_point():
    z0 = torch.rand(2, 1, 5, 5, dtype=torch.float64)
    z = _run(Anderson(m=3, lam=0.0), lambda z: z.clone(), z0, 4)
    assert torch.equal(z, z0)


def test_nesterov_schedule_and_fixed_momentum():
    T = lambda z: 0.5 * z  # noqa: E731
    z0 = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    acc = Nesterov(restart=False)
    z1, s1 = acc.step(z0, T(z0), acc.init(z0))
    assert torch.equal(z1, T(z0))  # t_1 = 1: no momentum on the first step
    z2, _ = acc.step(z1, T(z1), s1)
    t2 = (1 + 5**0.5) / 2
    t3 = (1 + (1 + 4 * t2**2) ** 0.5) / 2
    assert torch.allclose(z2, T(z1) + (t2 - 1) / t3 * (T(z1) - T(z0)))
    fixed = Nesterov(momentum=0.3, restart=False)
    z1, s1 = fixed.step(z0, T(z0), fixed.init(z0))
    assert torch.allclose(z1, T(z0) + 0.3 * (T(z0) - z0))


def test_registry_and_options():
    assert accelerators.names()[:3] == ["none", "nesterov", "anderson"]
    acc = accelerators.build("anderson:m=3,lam=0.001,beta=0.5")
    assert acc == Anderson(m=3, lam=0.001, beta=0.5)
    assert accelerators.build("nesterov:momentum=0.5,restart=false") == Nesterov(
        momentum=0.5, restart=False
    )
    for bad, match in [
        ("anderson:m=0", "memory"),
        ("anderson:beta=0", "beta"),
        ("anderson:lam=-1", "lam"),
        ("nesterov:momentum=1", "momentum"),
    ]:
        with pytest.raises(ValueError, match=match):
            accelerators.build(bad)
