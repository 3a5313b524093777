import pytest
import torch

from deq_explorer.fixedpoint import FixedPointMap, Status, StopRule, solve
from deq_explorer.metrics import batch_consistency
from deq_explorer.priors.classical import prox_tv
from deq_explorer.registry import accelerators, priors, solvers

SOLVERS = ["pnp-pgm", "red-sd", "fb", "pnp-admm", "mcnet-admm"]
STACKED = {"pnp-admm", "mcnet-admm"}


def test_registered_names():
    assert solvers.names()[:5] == SOLVERS


@pytest.mark.parametrize("accel", ["none", "nesterov", "anderson"])
@pytest.mark.parametrize("name", SOLVERS)
def test_every_solver_with_every_accelerator(problem, name, accel):
    op, y, x_true = problem  # (2, 1, 23, 17): odd, non-square
    prior = priors.build("tv:weight=0.05,iters=10")
    fp = solvers.build(name, op=op, prior=prior, y=y)
    assert isinstance(fp, FixedPointMap) and fp.name == name
    channels = 2 if name in STACKED else 1
    assert fp.z0.shape == (2, channels, 23, 17)
    assert torch.equal(fp.image(fp.z0), op.init(y))
    if name in STACKED:
        assert float(fp.z0[:, 1:].abs().max()) == 0.0
    assert fp.T(fp.z0).shape == fp.z0.shape
    sol = solve(fp, accelerators.build(accel), StopRule(max_iter=6, tol=0.0), reference=x_true)
    assert sol.status is Status.MAX_ITER and sol.iterations == 6
    assert sol.x.shape == x_true.shape and bool(torch.isfinite(sol.x).all())
    assert all(v is not None for v in sol.history["ssim"])


def test_pnp_pgm_and_red_sd_share_fixed_points(problem):
    op, y, _ = problem
    y = y.double()
    prior = priors.build("tv:weight=0.05,iters=100")
    pgm = solve(
        solvers.build("pnp-pgm:tau=0.7", op=op, prior=prior, y=y),
        accelerators.build("anderson"),
        StopRule(max_iter=300, tol=1e-9),
    )
    assert pgm.status is Status.CONVERGED
    red = solvers.build("red-sd:tau=0.7", op=op, prior=prior, y=y)
    x = pgm.x
    assert float((red.T(x) - x).norm() / x.norm()) < 1e-7
    # and the fixed point is not trivial: moving it breaks the balance
    assert float((red.T(x + 0.01) - (x + 0.01)).norm() / x.norm()) > 1e-4


def test_pnp_admm_and_fb_solve_tv_denoising(problem, mask_operator):
    """With A = I both minimise ½‖x − y‖² + weight·TV(x): the TV prox of y."""
    _, _, x_true = problem
    op = mask_operator(torch.ones(x_true.shape[1:], dtype=torch.float64))
    y = x_true + 0.05 * torch.randn(x_true.shape, generator=torch.Generator().manual_seed(3))
    y = y.double()
    weight, eta = 0.05, 0.49
    prior = priors.build(f"tv:weight={weight},iters=100")
    expected = prox_tv(y, weight, iters=2000)
    rule = StopRule(max_iter=200, tol=1e-8)
    admm = solve(solvers.build("pnp-admm", op=op, prior=prior, y=y), None, rule)
    # FB x ← prox_{σTV}(x − η∇g) minimises g + (σ/η)·TV; the default σ is η·weight
    fb_spec = f"fb:eta={eta}"
    fb = solve(solvers.build(fb_spec, op=op, prior=prior, y=y), None, rule)
    assert admm.status is Status.CONVERGED and fb.status is Status.CONVERGED
    assert float((admm.x - expected).abs().max()) < 1e-3
    assert float((fb.x - expected).abs().max()) < 1e-3
    assert float((y - expected).abs().max()) > 1e-2  # the check is not vacuous


def test_fb_sigma_option(problem):
    op, y, _ = problem
    prior = priors.build("tv:weight=0.05,iters=10")
    z = op.init(y)
    grad_step = z - 0.3 * op.grad_data(z, y)
    own = solvers.build("fb:eta=0.3", op=op, prior=prior, y=y)
    assert torch.allclose(own.T(z), prior.denoise(grad_step, 0.3 * 0.05))
    given = solvers.build("fb:eta=0.3,sigma=0.2", op=op, prior=prior, y=y)
    assert torch.allclose(given.T(z), prior.denoise(grad_step, 0.2))


@pytest.mark.parametrize("accel", ["none", "anderson"])
def test_mcnet_with_eps_zero_is_consistent(problem, accel):
    op, y, _ = problem
    prior = priors.build("tv:weight=0.05,iters=20")
    fp = solvers.build("mcnet-admm:eps=0", op=op, prior=prior, y=y)
    sol = solve(fp, accelerators.build(accel), StopRule(max_iter=40, tol=1e-6))
    assert sol.history["consistency"][-1] <= 1e-4


def test_mcnet_ball_constraint(problem):
    op, y, _ = problem
    eps = 0.1
    prior = priors.build("tv:weight=0.1,iters=20")
    fp = solvers.build(f"mcnet-admm:eps={eps}", op=op, prior=prior, y=y)
    sol = solve(fp, None, StopRule(max_iter=30, tol=0.0))
    residual = op.norm(op.A(sol.x) - y)
    assert bool((residual <= eps * (1 + 1e-5)).all())
    assert float(batch_consistency(op, sol.x, y).max()) > 0  # the ball is used, not ε = 0


def test_mcnet_with_identity_prior_projects_w(problem):
    """With R = I the layer solves min_{x∈S} ‖x − w‖²: the projection of w onto S."""
    op, y, x_true = problem
    w = x_true + 0.1
    fp = solvers.build("mcnet-admm:beta=0.5,rho=1", op=op, prior=priors.build("identity"), y=y, w=w)
    assert torch.equal(fp.image(fp.z0), w)
    sol = solve(fp, None, StopRule(max_iter=200, tol=1e-7))
    assert sol.status is Status.CONVERGED
    assert torch.allclose(sol.x, op.project(w, y, 0.0), atol=1e-5)


def test_w_starts_single_variable_solvers(problem):
    op, y, x_true = problem
    fp = solvers.build("pnp-pgm", op=op, prior=priors.build("identity"), y=y, w=x_true)
    assert torch.equal(fp.z0, x_true)


def test_bad_solver_input(problem):
    op, y, _ = problem
    prior = priors.build("identity")
    for spec, match in [
        ("pnp-pgm:gamma=0", "gamma must be a positive"),
        ("red-sd:tau=-1", "tau must be a positive"),
        ("fb:eta=0", "eta"),
        ("pnp-admm:gamma=-2", "gamma"),
        ("mcnet-admm:eps=-1", "eps"),
        ("mcnet-admm:rho=0", "rho"),
    ]:
        with pytest.raises(ValueError, match=match):
            solvers.build(spec, op=op, prior=prior, y=y)
    with pytest.raises(ValueError, match="measurement has shape"):
        solvers.build("pnp-pgm", op=op, prior=prior, y=y[..., :5])
    with pytest.raises(ValueError, match="image w has shape"):
        solvers.build("mcnet-admm", op=op, prior=prior, y=y, w=y[:1])
