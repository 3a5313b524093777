"""Jacobian size at a point: Hutchinson's ‖J‖_F² estimate (a loss term) and the spectral radius."""

from __future__ import annotations

import pytest
import torch

from deq_explorer.deq.jacobian import jacobian_frobenius, spectral_radius


def _linear(n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    eig = torch.linspace(-0.5, 0.8, n, dtype=torch.float64)  # |λ|max = 0.8, then 0.68
    return q @ torch.diag(eig) @ q.T


def test_hutchinson_estimates_the_frobenius_norm_of_a_linear_map() -> None:
    m = _linear()
    T = lambda z: z @ m.T  # noqa: E731 - a batch of vectors (B, n)
    z = torch.zeros(4, 12, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    est = float(jacobian_frobenius(T, z, g, samples=500))
    exact = float(m.pow(2).sum()) / 12
    assert est == pytest.approx(exact, rel=0.05)


def test_the_estimate_is_differentiable_in_the_parameters() -> None:
    w = torch.tensor(0.7, requires_grad=True)
    g = torch.Generator().manual_seed(2)
    penalty = jacobian_frobenius(lambda z: w * z, torch.ones(2, 3, 5, 5), g)
    penalty.backward()
    # ‖εᵀ(wI)‖²/n = w²·‖ε‖²/n: its derivative is 2·penalty/w
    assert float(w.grad) == pytest.approx(2 * float(penalty.detach()) / 0.7, rel=1e-6)


def test_power_iteration_finds_the_spectral_radius() -> None:
    m = _linear()
    rho = spectral_radius(lambda z: z @ m.T, torch.zeros(1, 12, dtype=torch.float64), iters=80,
                          generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert rho == pytest.approx(0.8, abs=1e-3)
    # a nonlinear map: the radius of its Jacobian at the point, 0.5·(1 − tanh²(1))
    rho = spectral_radius(lambda z: 0.5 * torch.tanh(z), torch.ones(1, 6, dtype=torch.float64))
    assert rho == pytest.approx(0.5 * (1 - torch.tanh(torch.tensor(1.0)) ** 2).item(), rel=1e-6)


def test_api_reports_the_radius_of_a_known_solver_map() -> None:
    import deq_explorer.api as dx

    image = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    problem = dx.simulate(image, "denoise", noise=0.05, seed=0)
    # red-sd with no prior: T(x) = x − γ(x − y), so ∂T/∂z = (1 − γ)I
    rho = dx.spectral_radius(problem, prior="identity", solver="red-sd:gamma=0.6", accel="none")
    assert rho == pytest.approx(0.4, rel=1e-5)
    with pytest.raises(dx.ProblemError, match=r"unknown solve options \['solvr'\]"):
        dx.spectral_radius(problem, prior="identity", solvr="red-sd")
