import pytest
import torch

from deq_explorer.priors import classical
from deq_explorer.priors.classical import (
    TVPrior,
    finite_diff,
    finite_diff_adjoint,
    prox_tv,
    tv,
    tv_dual,
)
from deq_explorer.registry import priors


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one intra-op thread avoids contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _image(shape=(2, 3, 19, 24), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype)


def _objective(u, x, lam):
    return 0.5 * (u - x).pow(2).flatten(1).sum(1) + lam * tv(u)


def test_finite_diff_adjoint_is_exact():
    x = _image((2, 2, 13, 17))
    q = torch.randn(
        (2, 2, 2, 13, 17), generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    lhs = (finite_diff(x) * q).sum()
    rhs = (x * finite_diff_adjoint(q)).sum()
    assert abs(lhs - rhs) < 1e-10 * x.norm() * q.norm()


def test_tv_of_known_images():
    step = torch.zeros(1, 1, 4, 5, dtype=torch.float64)
    step[..., 2:] = 1.0  # one vertical edge of height 4
    assert float(tv(step)) == pytest.approx(4.0)
    assert float(tv(torch.ones(1, 2, 6, 6))) == 0.0


@pytest.mark.parametrize("lam", [0.05, 0.3])
def test_tv_prox_dual_gap_vanishes(lam):
    x = _image()
    gaps = []
    for iters in (20, 100, 400):
        q = tv_dual(x, lam, iters)
        u = x - finite_diff_adjoint(q)
        primal = _objective(u, x, lam)
        dual = 0.5 * x.pow(2).flatten(1).sum(1) - 0.5 * u.pow(2).flatten(1).sum(1)
        # q is dual feasible: |q_ij| ≤ λ
        assert float(q.pow(2).sum(2).sqrt().max()) <= lam * (1 + 1e-12)
        gap = (primal - dual) / primal
        assert bool((gap >= -1e-12).all())
        gaps.append(float(gap.max()))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4 and gaps[2] < gaps[0] / 100


def test_tv_prox_minimises_objective():
    x = _image(seed=3)
    lam = 0.1
    u = prox_tv(x, lam, iters=300)
    best = _objective(u, x, lam)
    assert bool((best < _objective(x, x, lam)).all())
    g = torch.Generator().manual_seed(4)
    for _ in range(5):
        v = u + 1e-3 * torch.randn(u.shape, generator=g, dtype=u.dtype)
        assert bool((best <= _objective(v, x, lam) + 1e-9).all())
    # the 50-step default is close to the long-run result
    assert float((prox_tv(x, lam) - u).abs().max()) < 2e-2


def test_tv_prox_per_item_weight_and_zero_weight():
    x = _image((2, 1, 16, 16), seed=5)
    both = prox_tv(x, torch.tensor([0.0, 0.2], dtype=x.dtype))
    assert torch.allclose(both[:1], x[:1])
    assert torch.allclose(both[1:], prox_tv(x[1:], 0.2))


def test_tv_prior_contract():
    prior = priors.build("tv:weight=0.1,iters=30")
    assert isinstance(prior, TVPrior) and prior.sigma == 0.1
    x = _image((1, 1, 16, 16), dtype=torch.float32, seed=6)
    assert torch.allclose(prior.denoise(x), prior.prox(x, 1.0))
    assert torch.allclose(prior.prox(x, 2.0), prox_tv(x, 0.2, 30))
    assert torch.allclose(prior.denoise(x, 0.3), prox_tv(x, 0.3, 30))
    assert torch.allclose(prior.red_grad(x), x - prior.denoise(x))
    assert float(tv(prior.denoise(x))) < float(tv(x))


def test_identity_prior():
    prior = priors.build("identity")
    x = _image((1, 2, 5, 7))
    assert prior.denoise(x) is x and prior.prox(x, 3.0) is x
    assert float(prior.red_grad(x).abs().max()) == 0.0


def test_bad_tv_options():
    with pytest.raises(ValueError, match="TV weight must be ≥ 0"):
        priors.build("tv:weight=-1")
    with pytest.raises(ValueError, match="iters"):
        priors.build("tv:iters=0")


def test_tv_dual_scripted_matches_python():
    """The TorchScript loop (used when available) and the Python one agree."""
    x = _image((2, 3, 12, 9), seed=7)
    lam = torch.tensor([0.05, 0.2], dtype=x.dtype).view(-1, 1, 1, 1, 1)
    tiny = torch.finfo(x.dtype).tiny
    scripted = classical._compiled_fgp()
    assert scripted is not classical._fgp  # TorchScript is available here
    assert torch.allclose(scripted(x, lam, 40, tiny), classical._fgp(x, lam, 40, tiny))


def test_tv_prox_gradient_is_finite_and_exact():
    """Autograd through the FGP loop, flat patches included (no 0/0 in the projection)."""
    x = _image((1, 1, 7, 6), seed=8)
    x[..., :3, :3] = 0.5  # a flat patch: zero differences
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: prox_tv(v, 0.1, iters=15), (x,))
