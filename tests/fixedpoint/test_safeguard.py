"""The accelerators' safeguard: never worse than plain iteration from the best point."""

from __future__ import annotations

import pytest
import torch

from deq_explorer import api
from deq_explorer.fixedpoint import Status
from deq_explorer.fixedpoint.accelerators import Anderson, Guard, Nesterov, NoAcceleration
from deq_explorer.images import center_crop, load_sample


def _oscillating(n: int = 64):
    """``T(z) = Λz + c``, Λ diagonal in [−0.97, 0.5]: contractive, but momentum diverges on it.

    FISTA momentum μ → 1 on an eigenvalue λ ≈ −1 has the root −(1 + μ)|λ|/2 − … of modulus
    above 1: unguarded Nesterov blows up where plain iteration converges.
    """
    g = torch.Generator().manual_seed(0)
    lam = torch.linspace(-0.97, 0.5, n, dtype=torch.float64).view(1, 1, 1, n)
    c = torch.rand(1, 1, 1, n, generator=g, dtype=torch.float64)
    z0 = torch.zeros(1, 1, 1, n, dtype=torch.float64)
    return (lambda z: lam * z + c), z0, c / (1 - lam)


def _residual_after(acc, T, z0, steps: int) -> float:
    z, state = z0, acc.init(z0)
    for _ in range(steps):
        z, state = acc.step(z, T(z), state)
    return float((T(z) - z).norm())


def test_guard_undoes_a_worse_step_once_and_then_follows_plain_iteration():
    z0 = torch.zeros(2, 1, 1, 3, dtype=torch.float64)
    guard = Guard.start(z0)
    undo, guard = guard.check(z0, z0 + 1.0, factor=1.0)  # first pair: the reference
    assert not undo.any() and torch.equal(guard.best_Tz, z0 + 1.0)
    worse = torch.tensor([2.0, 0.5], dtype=torch.float64).view(2, 1, 1, 1)
    undo, guard = guard.check(z0, z0 + worse, factor=1.0)
    assert undo.tolist() == [True, False] and guard.restarts == 1
    assert float(guard.best[1]) == pytest.approx(0.5 * 3**0.5)  # item 1 improved
    # item 0's next pair is its fallback: accepted even when worse, and becomes the reference
    undo, guard = guard.check(z0, z0 + 3.0, factor=1.0)
    assert undo.tolist() == [False, True]
    assert float(guard.best[0]) == pytest.approx(3 * 3**0.5)
    off, _ = Guard.start(z0).check(z0, z0 + 1.0, factor=0.0)
    assert not off.any()


def test_unguarded_momentum_diverges_where_the_guarded_one_converges():
    """Momentum cannot pay on an eigenvalue near −1; guarded, it still converges (slower than
    plain iteration here: every undone step costs one evaluation), where unguarded it blows up.
    Anderson, guarded, keeps plain iteration's pace."""
    T, z0, _ = _oscillating()
    start = _residual_after(NoAcceleration(), T, z0, 0)
    plain = _residual_after(NoAcceleration(), T, z0, 300)
    assert plain < 1e-4 * start  # rate 0.97
    assert _residual_after(Nesterov(safeguard=0, restart=False), T, z0, 300) > 1e3 * start
    for acc in (Nesterov(), Nesterov(restart=False)):
        assert _residual_after(acc, T, z0, 300) < 1e-2 * start, acc
    for acc in (Anderson(), Anderson(lam=0.0)):
        assert _residual_after(acc, T, z0, 300) <= plain, acc


@pytest.mark.parametrize("acc", [Anderson(), Nesterov()])
def test_guarded_accelerators_still_accelerate_a_plain_contraction(acc):
    g = torch.Generator().manual_seed(1)
    lam = torch.linspace(0.0, 0.97, 64, dtype=torch.float64).view(1, 1, 1, 64)
    c = torch.rand(1, 1, 1, 64, generator=g, dtype=torch.float64)
    T, z0 = (lambda z: lam * z + c), torch.zeros(1, 1, 1, 64, dtype=torch.float64)
    plain = _residual_after(NoAcceleration(), T, z0, 100)
    assert _residual_after(acc, T, z0, 100) < plain / 100


def test_options_are_checked():
    for bad in (0.5, -1.0, float("nan")):
        with pytest.raises(ValueError, match="safeguard must be 0"):
            Anderson(safeguard=bad)
        with pytest.raises(ValueError, match="safeguard must be 0"):
            Nesterov(safeguard=bad)


@pytest.mark.slow
def test_defaults_converge_on_sr_where_the_unguarded_rules_did_not():
    """``dncnn-awgn``, PnP-PGM, SR ×2 of a 128² photo: plain iteration needs ~280 iterations.

    Before the safeguard and ``lam=1e-2``, Anderson stalled at a residual of 1e-3 and 3 dB
    below plain iteration after 300 iterations, and Nesterov diverged (BENCHMARKS.md).
    """
    torch.manual_seed(0)
    image = center_crop(load_sample("camera"), 128)
    problem = api.simulate(image, "sr:scale=2", noise=0.01, seed=0)
    for accel in ("anderson", "nesterov"):
        solution = api.reconstruct(problem, prior="dncnn-awgn", accel=accel, max_iter=270)
        assert solution.status is Status.CONVERGED, accel
        assert solution.history["psnr"][-1] > 27.5, accel  # plain ends at 27.9 dB


def test_safeguard_off_never_restarts():
    """``safeguard=0`` is the unguarded rule of before, step for step."""
    T, z0, _ = _oscillating()
    for acc in (Anderson(safeguard=0, lam=1e-4), Nesterov(safeguard=0)):
        z, state = z0, acc.init(z0)
        for _ in range(20):
            z, state = acc.step(z, T(z), state)
        assert state.guard.restarts == 0 and torch.isfinite(z).all()
