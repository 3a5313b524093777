"""The explorer's priors and operators as deepinv denoisers and physics, in deepinv's algorithms."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "deepinv",
    reason="deepinv is not installed: run these tests in the benchmark environment "
    "(bash benchmarks/env.sh; deepinv needs torch==2.14.1 torchvision==0.29.1)",
)
pytest.importorskip(
    "deq_explorer_deepinv",
    reason="the pack is not installed: pip install -e plugins/deq-explorer-deepinv",
)

import torch
from deepinv.optim import RED, PnP, optim_builder
from deepinv.optim.data_fidelity import L2
from deepinv.physics import MRI as DinvMRI
from deq_explorer_deepinv.export import as_deepinv_denoiser, as_deepinv_physics

from deq_explorer.errors import OperatorError, PriorError
from deq_explorer.fixedpoint import StopRule, solve
from deq_explorer.images import center_crop, load_sample, to_gray
from deq_explorer.metrics import psnr
from deq_explorer.priors.checkpoint import SHIPPED_DIR, read_metadata
from deq_explorer.registry import operators, solvers

#: spec → image shape (odd sizes where the operator takes them)
PHYSICS = {
    "deblur:sigma=1.3": (1, 31, 27),
    "sr:scale=2": (1, 32, 28),
    "inpaint:p=0.6": (1, 31, 27),
    "mri:rate=0.3": (1, 31, 27),
}
SHIPPED = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))
DENOISERS = [
    n for n in SHIPPED if read_metadata(SHIPPED_DIR / f"{n}.safetensors")["mode"] != "mcnet"
]


@pytest.mark.parametrize("spec", PHYSICS)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_deepinv_adjointness_test(spec, dtype, tol):
    physics = as_deepinv_physics(spec, shape=PHYSICS[spec], dtype=dtype)
    err = physics.adjointness_test(dtype=dtype, num_samples=4)
    assert float(err) < tol


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 31, 27)])
def test_mri_follows_deepinv_mri_convention(shape, gen):
    """Real/imaginary channels and centred k-space: deepinv's own MRI gives the same y."""
    physics = as_deepinv_physics("mri:rate=0.3", shape=shape, dtype=torch.float64)
    theirs = DinvMRI(mask=torch.fft.fftshift(physics.op.mask.double()), img_size=(2, *shape[1:]))
    x = torch.rand((2, *shape), dtype=torch.float64, generator=gen)
    as_complex = torch.cat([x, torch.zeros_like(x)], dim=1)
    y = physics.A(x)
    assert y.shape == (2, 2, *shape[1:]) and not y.is_complex()
    assert torch.allclose(y, theirs.A(as_complex), atol=1e-12)
    assert torch.allclose(physics.A_adjoint(y), theirs.A_adjoint(y)[:, :1], atol=1e-12)
    assert torch.allclose(physics.A(physics.A_dagger(y)), y, atol=1e-12)  # consistent
    with pytest.raises(OperatorError, match="channels"):
        physics.A_adjoint(physics.op.A(x))  # complex y in the explorer's layout


@pytest.mark.parametrize("spec", PHYSICS)
def test_prox_l2_is_the_closed_form_prox(spec, gen):
    """deepinv's prox_l2(z, y, γ) = argmin γ/2‖Ax − y‖² + ½‖x − z‖², with one γ per item too."""
    physics = as_deepinv_physics(spec, shape=PHYSICS[spec], dtype=torch.float64)
    z = torch.rand((2, *PHYSICS[spec]), dtype=torch.float64, generator=gen)
    y = physics.A(torch.rand(z.shape, dtype=torch.float64, generator=gen))
    for gamma in (0.7, torch.tensor([0.3, 5.0], dtype=torch.float64)):
        x = physics.prox_l2(z, y, gamma)
        g = gamma.reshape(-1, 1, 1, 1) if isinstance(gamma, torch.Tensor) else gamma
        grad = g * physics.A_adjoint(physics.A(x) - y) + (x - z)
        assert float(grad.abs().max()) < 1e-10


def test_noise_is_gaussian_on_measured_entries_only(gen):
    physics = as_deepinv_physics("inpaint:p=0.5", shape=(1, 64, 64), sigma=0.1)
    x = torch.rand((1, 1, 64, 64), generator=gen)
    e = physics(x) - physics.A(x)
    kept = physics.op.support()
    assert bool((e[..., ~kept] == 0).all())
    assert float(e[..., kept].std()) == pytest.approx(0.1, rel=0.1)


def test_physics_arguments_are_checked():
    with pytest.raises(OperatorError, match="shape"):
        as_deepinv_physics("deblur")
    op = operators.build("deblur", shape=(1, 16, 16))
    assert as_deepinv_physics(op).op is op
    with pytest.raises(OperatorError, match="differs"):
        as_deepinv_physics(op, shape=(1, 8, 8))


@pytest.mark.parametrize("name", DENOISERS)
def test_wrapped_denoiser_equals_the_prior(name, gen):
    """A float σ and one σ per image (as deepinv passes them) give the prior's own denoising."""
    denoiser = as_deepinv_denoiser(name)
    prior = denoiser.prior
    x = torch.rand((2, 1, 40, 36), generator=gen)
    sigma = torch.tensor([0.02, 0.05])
    with torch.no_grad():
        assert torch.allclose(denoiser(x, 0.03), prior.denoise(x, 0.03), atol=1e-6)
        assert torch.allclose(denoiser(x, sigma), prior.denoise(x, sigma), atol=1e-6)
        assert torch.allclose(denoiser(x, sigma[:, None, None, None]), prior.denoise(x, sigma))
        double = denoiser(x.double(), 0.03)  # run in the network's precision, returned in x's
        assert double.dtype == torch.float64
        assert torch.allclose(double.float(), prior.denoise(x, 0.03), atol=1e-7)
        denoiser.double()  # moves the prior's network
        assert prior.denoise(x.double(), 0.03).dtype == torch.float64


def test_mcnet_regulariser_is_refused_and_bad_sigma_explained():
    with pytest.raises(PriorError, match="MCNet"):
        as_deepinv_denoiser("mcnet-sr2")
    with pytest.raises(PriorError, match="one per image"):
        as_deepinv_denoiser("tv")(torch.zeros(2, 1, 8, 8), torch.tensor([0.1, 0.2, 0.3]))


@pytest.fixture(scope="module")
def deblur_problem():
    """A 64² camera crop blurred (σ_blur 1.6) with noise 0.01, for both libraries."""
    x = torch.as_tensor(center_crop(to_gray(load_sample("camera")), 64)).reshape(1, 1, 64, 64)
    physics = as_deepinv_physics("deblur:sigma=1.6", shape=(1, 64, 64), sigma=0.01)
    y = physics.op.measure(x.float(), 0.01, torch.Generator().manual_seed(0))
    return x.float(), y, physics


def test_deepinv_pgd_with_our_prior_matches_pnp_pgm(deblur_problem):
    """deepinv's PGD (RED step first, then the data prox) is our pnp-pgm, iterate for iterate.

    Measured: 26.0 dB blurred, 31.55 dB after 30 iterations, and the two solves are
    bit-identical (same operations in the same order); 1e-5 leaves room for other
    thread counts and BLAS builds.
    """
    x, y, physics = deblur_problem
    gamma, tau, sigma, iters = 1.0, 0.5, 0.02, 30
    denoiser = as_deepinv_denoiser("dncnn-awgn")
    model = optim_builder(
        "PGD",
        prior=RED(denoiser),
        data_fidelity=L2(),
        g_first=True,
        max_iter=iters,
        early_stop=False,
        params_algo={"stepsize": gamma, "lambda": tau, "g_param": sigma},
    )
    prior = as_deepinv_denoiser(f"dncnn-awgn:sigma={sigma}").prior
    ours = solvers.create("pnp-pgm", op=physics.op, prior=prior, y=y, gamma=gamma, tau=tau)
    with torch.no_grad():
        theirs = model(y, physics, init=physics.op.init(y))
        result = solve(ours, rule=StopRule(max_iter=iters, tol=0.0))
    assert result.iterations == iters
    assert psnr(theirs, x) > psnr(y, x) + 2
    assert float((theirs - result.x).abs().max()) < 1e-5


def test_deepinv_pnp_pgd_matches_fb(deblur_problem):
    """deepinv's PnP-PGD x ← D_σ(x − γ∇f(x)) is our fb solver with η = γ.

    Measured: 31.50 dB; the solves differ by at most 5e-7 to 1e-6 over γ ∈ {1, 1.9} and
    σ ∈ {0.01, 0.02, 0.03} (float32 rounding of γ·∇f taken in another order), so 1e-5.
    """
    x, y, physics = deblur_problem
    denoiser = as_deepinv_denoiser("dncnn-awgn")
    model = optim_builder(
        "PGD",
        prior=PnP(denoiser),
        data_fidelity=L2(),
        max_iter=30,
        early_stop=False,
        params_algo={"stepsize": 1.0, "g_param": 0.02},
    )
    ours = solvers.create("fb", op=physics.op, prior=denoiser.prior, y=y, eta=1.0, sigma=0.02)
    with torch.no_grad():
        theirs = model(y, physics, init=physics.op.init(y))
        result = solve(ours, rule=StopRule(max_iter=30, tol=0.0))
    assert psnr(theirs, x) > psnr(y, x) + 2
    assert float((theirs - result.x).abs().max()) < 1e-5
