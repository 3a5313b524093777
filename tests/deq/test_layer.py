"""DEQ backward rules against autograd through the unrolled iteration (float64)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from deq_explorer.deq import (
    DEQ,
    Forward,
    Implicit,
    JacobianFree,
    Unrolled,
    fixed_point,
    mse_residual,
)
from deq_explorer.fixedpoint.base import FixedPointMap, Status, StopRule

DT = torch.float64


def _op_norm(conv: nn.Conv2d, shape: tuple[int, ...], iters: int = 200) -> float:
    """Largest singular value of the linear part of ``conv`` (power iteration)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=DT)
    lin = lambda u: nn.functional.conv2d(u, conv.weight, padding=conv.padding)  # noqa: E731
    with torch.enable_grad():
        for _ in range(iters):
            x = x.requires_grad_()
            y = lin(x)
            (xt,) = torch.autograd.grad(y, x, y)  # Kᵀ K x
            x = (xt / xt.norm()).detach()
    return float(lin(x).norm())


def tiny_net(lip: float = 0.9) -> nn.Module:
    """1 → 8 → 1 channel conv net with tanh, scaled to Lipschitz ≤ ``lip``."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 1, 3, padding=1))
    net = net.to(DT)
    with torch.no_grad():
        for conv, c in ((net[0], 1), (net[2], 8)):
            conv.weight *= lip**0.5 / _op_norm(conv, (1, c, 16, 16))
    return net


def pnp_map(net: nn.Module, alpha: float = 0.7) -> FixedPointMap:
    """Relaxed PnP for inpainting: ``T(z) = α D(v) + (1−α) v``, ``v = z − m(mz − y)``."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 1, 16, 16, generator=g, dtype=DT)
    m = (torch.rand(x.shape, generator=g, dtype=DT) > 0.4).to(DT)
    y = m * x

    def T(z: torch.Tensor) -> torch.Tensor:
        v = z - m * (m * z - y)
        return alpha * net(v) + (1 - alpha) * v

    return FixedPointMap(T=T, z0=y.clone(), image=lambda z: z, op=None, y=y, name="pnp")


def _target() -> torch.Tensor:
    return torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3), dtype=DT)


def grad_of(backward, forward: Forward) -> tuple[torch.Tensor, object]:
    net = tiny_net()
    fp = pnp_map(net)
    z, stats = DEQ(forward=forward, backward=backward)(fp)
    loss = 0.5 * (fp.image(z) - _target()).pow(2).sum()
    grads = torch.autograd.grad(loss, list(net.parameters()))
    if isinstance(backward, Implicit):
        # the hook ran inside autograd.grad: counts are in place
        assert stats.backward_iters > 0
    return torch.cat([g.flatten() for g in grads]), stats


@dataclass(frozen=True)
class Damped:
    """A test accelerator: ``z ← (1−w) z + w T(z)`` (exercises the Accelerator protocol)."""

    w: float = 0.8

    def init(self, z0):
        return 0

    def step(self, z, Tz, state):
        return (1 - self.w) * z + self.w * Tz, state + 1


TIGHT = StopRule(max_iter=2000, tol=1e-13)


@pytest.fixture(scope="module")
def unrolled() -> torch.Tensor:
    g, stats = grad_of(Unrolled(), Forward(rule=TIGHT))
    assert stats.forward_status is Status.CONVERGED
    return g


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("acc", [None, Damped()])
def test_implicit_gradient_equals_unrolled(unrolled: torch.Tensor, acc) -> None:
    g, stats = grad_of(
        Implicit(accelerator=acc, rule=StopRule(max_iter=2000, tol=1e-12)),
        Forward(accelerator=acc, rule=TIGHT),
    )
    assert stats.forward_status is Status.CONVERGED
    assert stats.backward_status is Status.CONVERGED
    assert rel(g, unrolled) < 1e-4


def test_implicit_with_loose_backward_is_less_exact(unrolled: torch.Tensor) -> None:
    """The test can fail: two backward iterations do not reach the implicit gradient."""
    g, stats = grad_of(Implicit(rule=StopRule(max_iter=2, tol=0)), Forward(rule=TIGHT))
    assert stats.backward_iters == 2 and stats.backward_status is Status.MAX_ITER
    assert rel(g, unrolled) > 1e-3


def test_jacobian_free_is_a_descent_direction(unrolled: torch.Tensor) -> None:
    g, stats = grad_of(JacobianFree(), Forward(rule=TIGHT))
    assert stats.backward_iters == 0
    assert float(g @ unrolled) > 0
    assert rel(g, unrolled) > 1e-3  # genuinely a different direction


def test_no_grad_returns_detached_fixed_point() -> None:
    net = tiny_net()
    fp = pnp_map(net)
    with torch.no_grad():
        z, stats = DEQ(forward=Forward(rule=TIGHT))(fp)
    assert not z.requires_grad
    with torch.no_grad():
        assert float((fp.T(z) - z).norm() / z.norm()) < 1e-12
    assert stats.forward_iters > 5


def test_bad_backward_rule() -> None:
    with pytest.raises(TypeError, match="backward must be"):
        DEQ(backward="implicit")


def test_fixed_point_status_and_residuals() -> None:
    z0 = torch.ones(3, dtype=DT)
    r = fixed_point(lambda z: 0.5 * z + 1, z0, rule=StopRule(max_iter=100, tol=1e-6))
    assert r.status is Status.CONVERGED and float((r.z - 2).abs().max()) < 1e-5
    r = fixed_point(lambda z: 3 * z, z0, rule=StopRule(max_iter=100, tol=0, diverge_at=1e10))
    assert r.status is Status.DIVERGED and float(r.z.abs().max()) <= 1e10
    r = fixed_point(lambda z: 0.5 * z, z0, rule=StopRule(max_iter=4, tol=0))
    assert r.status is Status.MAX_ITER and r.iterations == 4
    calls = iter([False, False, True])  # polled after each iteration
    r = fixed_point(lambda z: 0.5 * z, z0, rule=StopRule(tol=0), stop=lambda: next(calls))
    assert r.status is Status.STOPPED and r.iterations == 3
    shift = lambda d: lambda z: z + d  # noqa: E731 - MSE between iterates is d²
    r = fixed_point(shift(1e-3), z0, rule=StopRule(max_iter=5, tol=1e-7), residual=mse_residual)
    assert r.status is Status.MAX_ITER
    r = fixed_point(shift(1e-4), z0, rule=StopRule(max_iter=5, tol=1e-7), residual=mse_residual)
    assert r.status is Status.CONVERGED and r.iterations == 1
