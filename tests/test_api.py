"""The headless API: simulate → reconstruct, mismatch, user measurements, and bad input."""

import numpy as np
import pytest
import torch

from deq_explorer import api, metrics
from deq_explorer.fixedpoint import Iterate, Status
from deq_explorer.images import ImageError, load_image
from deq_explorer.operators.base import LinearOperator, OperatorError, resolvent
from deq_explorer.operators.needs import ImageNeeds
from deq_explorer.priors.checkpoint import save_checkpoint
from deq_explorer.priors.nets import DnCNN
from deq_explorer.registry import SpecError, accelerators, operators, priors, solvers
from deq_explorer.testing import check_operator


@pytest.fixture(scope="module")
def crop48() -> np.ndarray:
    """A 48×48 piece of the cameraman with edges and texture, ``(1, 48, 48)``."""
    return load_image("sample:camera")[:, 180:228, 180:228].copy()


@pytest.fixture(scope="module")
def rgb48() -> np.ndarray:
    return load_image("sample:astronaut")[:, 100:148, 200:248].copy()


# -- the three-line use ------------------------------------------------------------------


@pytest.mark.parametrize("operator", ["sr:scale=2", "deblur:sigma=1.6", "mri:rate=0.3"])
def test_three_lines_improve_over_init(crop48, operator):
    problem = api.simulate(crop48, operator, noise=0.01, seed=1)
    solution = api.reconstruct(problem, prior="tv:weight=0.02", accel="anderson", max_iter=30)
    gain = metrics.psnr(solution.x, problem.x_true) - metrics.psnr(problem.x_init(), problem.x_true)
    assert gain > 1.0
    assert solution.status in (Status.CONVERGED, Status.MAX_ITER)
    assert 1 <= solution.iterations <= 30


def test_simulate_binds_data_and_model(crop48):
    problem = api.simulate(crop48, "sr:scale=2", noise=0.02, seed=3)
    assert problem.y.shape == (1, 1, 24, 24) and problem.x_true.shape == (1, 1, 48, 48)
    assert problem.op is problem.sim_op and not problem.mismatched
    torch.testing.assert_close(problem.x_true[0], torch.from_numpy(crop48))
    # y = A x + e with e of the requested level, reproducible from the seed
    e = problem.y - problem.op.A(problem.x_true)
    assert abs(float(e.std()) - 0.02) < 0.004
    again = api.simulate(crop48, "sr:scale=2", noise=0.02, seed=3)
    torch.testing.assert_close(again.y, problem.y, rtol=0, atol=0)
    other = api.simulate(crop48, "sr:scale=2", noise=0.02, seed=4)
    assert not torch.equal(other.y, problem.y)
    assert problem.config() == {
        "operator": "sr:scale=2",
        "solve_operator": "sr:scale=2",
        "noise": 0.02,
        "seed": 3,
        "image_shape": [1, 48, 48],
        "device": "cpu",
    }


def test_images_from_files_and_samples(tmp_path, crop48):
    np.save(tmp_path / "x.npy", crop48[0])
    from_file = api.simulate(tmp_path / "x.npy", "denoise", device="cpu")
    torch.testing.assert_close(from_file.x_true[0], torch.from_numpy(crop48))
    assert api.simulate("sample:phantom", "denoise").x_true.shape == (1, 1, 256, 256)


def test_run_streams_iterates_with_metrics(crop48):
    problem = api.simulate(crop48, "deblur:sigma=1.0", noise=0.01)
    its = list(api.run(problem, prior="tv:weight=0.02", max_iter=4, tol=0))
    assert [it.k for it in its] == [1, 2, 3, 4]
    assert all(isinstance(it, Iterate) and it.psnr is not None for it in its)
    assert its[-1].status is Status.MAX_ITER
    solution = api.reconstruct(problem, prior="tv:weight=0.02", max_iter=4, tol=0)
    torch.testing.assert_close(solution.x, its[-1].x)


def test_stop_request_is_honoured(crop48):
    problem = api.simulate(crop48, "denoise", noise=0.05)
    calls = []
    solution = api.reconstruct(
        problem, max_iter=50, tol=0, stop=lambda: calls.append(1) or len(calls) >= 3
    )
    assert solution.status is Status.STOPPED and solution.iterations < 50


# -- mismatch --------------------------------------------------------------------------


def test_mri_mismatch_rate(crop48):
    problem = api.simulate(crop48, "mri:rate=0.1", solve_operator="mri:rate=0.2", noise=0.01)
    assert problem.mismatched
    assert problem.operator == "mri:rate=0.1" and problem.solve_operator == "mri:rate=0.2"
    assert problem.op is not problem.sim_op
    assert tuple(problem.y.shape[1:]) == tuple(problem.op.y_shape) == (1, 48, 48)
    # the masks themselves (0/1, exact), not A of a constant image: its FFT is one coefficient
    # up to round-off, so counting non-zeros would test the CPU's FFT rounding
    data_mask, model_mask = problem.sim_op.mask.bool(), problem.op.mask.bool()
    assert float(data_mask.float().mean()) == pytest.approx(0.1, abs=0.03)
    assert float(model_mask.float().mean()) == pytest.approx(0.2, abs=0.03)
    assert int(data_mask.sum()) < int(model_mask.sum())  # the model samples more of k-space
    # A of a random image is non-zero exactly where each mask samples
    x = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    for op, mask in ((problem.sim_op, data_mask), (problem.op, model_mask)):
        k = op.A(x).abs().reshape(mask.shape)
        assert bool((k[mask] > 1e-6).all()) and bool((k[~mask] == 0).all())
    solution = api.reconstruct(problem, max_iter=3)
    assert torch.isfinite(solution.x).all()


def test_sr_kernel_mismatch(crop48):
    problem = api.simulate(crop48, "sr:scale=2", solve_operator="sr:scale=2,sigma=2.0")
    assert problem.mismatched
    x = problem.x_true
    assert problem.op.A(x).shape == problem.sim_op.A(x).shape
    assert not torch.allclose(problem.op.A(x), problem.sim_op.A(x), atol=1e-3)


def test_solve_operator_with_another_measurement_shape(crop48):
    with pytest.raises(api.ProblemError) as err:
        api.simulate(crop48, "sr:scale=2", solve_operator="sr:scale=4")
    message = str(err.value)
    assert "(1, 12, 12)" in message and "(1, 24, 24)" in message and "same output size" in message
    with pytest.raises(api.ProblemError, match=r"\(1, 48, 48\).*\(1, 24, 24\)"):
        api.simulate(crop48, "sr:scale=2", solve_operator="deblur")


# -- user measurements -----------------------------------------------------------------


def test_from_measurement_sr(crop48):
    simulated = api.simulate(crop48, "sr:scale=2", noise=0.01)
    y = simulated.y[0].numpy()
    assert y.shape == (1, 24, 24)
    problem = api.from_measurement(y, "sr:scale=2", noise=0.01)  # the data's noise, known
    assert problem.op.x_shape == (1, 48, 48) and problem.x_true is None
    assert problem.sim_op is None and not problem.mismatched
    its = list(api.run(problem, max_iter=3))
    assert its[-1].psnr is None and its[-1].x.shape == (1, 1, 48, 48)
    # the same data gives the same reconstruction as the simulated problem
    torch.testing.assert_close(
        api.reconstruct(problem, max_iter=3).x, api.reconstruct(simulated, max_iter=3).x
    )
    assert api.from_measurement(y[0], "sr:scale=2").y.shape == (1, 1, 24, 24)  # (h, w) accepted


def test_from_measurement_mri_is_complex(crop48):
    y = api.simulate(crop48, "mri:rate=0.3").y
    problem = api.from_measurement(y, "mri:rate=0.3")
    assert problem.y.is_complex() and problem.op.x_shape == (1, 48, 48)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.zeros((1, 1, 1, 24, 24)), "finite"),
        (np.full((1, 24, 24), np.nan), "finite"),
    ],
    ids=["5d", "nan"],
)
def test_from_measurement_bad_data(y, message):
    with pytest.raises(api.ProblemError, match=message):
        api.from_measurement(y, "sr:scale=2")


# -- bad input -------------------------------------------------------------------------


def test_rgb_input_to_mri(rgb48):
    assert rgb48.shape == (3, 48, 48)
    with pytest.raises(OperatorError, match=r"single-channel.*3 channels.*gray"):
        api.simulate(rgb48, "mri:rate=0.3")
    problem = api.simulate(rgb48, "sr:scale=2")  # other operators act per channel
    assert problem.y.shape == (1, 3, 24, 24)


def test_sr_size_not_divisible_offers_cropping(crop48):
    image = crop48[:, :47, :46]
    with pytest.raises(api.ProblemError) as err:
        api.simulate(image, "sr:scale=2")
    assert "47x46" in str(err.value) and "46x46" in str(err.value) and "crop" in str(err.value)
    problem = api.simulate(image, "sr:scale=2", crop=True)
    assert problem.x_true.shape == (1, 1, 46, 46) and problem.y.shape == (1, 1, 23, 23)
    torch.testing.assert_close(problem.x_true[0], torch.from_numpy(crop48[:, :46, :46]))
    # a bad option is reported as such, not hidden behind a crop offer
    with pytest.raises(OperatorError, match="sigma"):
        api.simulate(image, "sr:scale=2,sigma=-1")


class Decimate(LinearOperator):
    """Keep every ``factor``-th pixel of the rows and columns: a pack's operator."""

    name = "test-decimate"

    def __init__(self, shape, factor, device=None, dtype=torch.float32):
        super().__init__(shape, device, dtype)
        if shape[1] % factor or shape[2] % factor:
            raise OperatorError(f"test-decimate: {factor} must divide the image size")
        self.factor = factor

    @property
    def y_shape(self):
        c, h, w = self.x_shape
        return (c, h // self.factor, w // self.factor)

    def A(self, x):
        self._check(x, self.x_shape, "x")
        return x[..., :: self.factor, :: self.factor]

    def A_adjoint(self, y):
        self._check(y, self.y_shape, "y")
        x = y.new_zeros((y.shape[0], *self.x_shape))
        x[..., :: self.factor, :: self.factor] = y
        return x

    def prox_data(self, z, y, gamma):
        step = resolvent(torch.ones((), dtype=z.dtype, device=z.device), gamma, z.ndim)
        return z + self.A_adjoint(step * (y - self.A(z)))

    def init(self, y):
        return y.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1)


def register_decimate() -> None:
    """A pack whose downsampling option is called ``factor``, not ``scale``."""

    def decimate(shape, device=None, dtype=torch.float32, *, factor: int = 3) -> Decimate:
        """Keep every factor-th pixel."""
        return Decimate(tuple(shape), factor, device, dtype)

    def needs(*, factor: int, **_) -> ImageNeeds:
        return ImageNeeds(multiple=factor, example=(2, 7 * factor, 5 * factor))

    operators.register("test-decimate", decimate, metadata={"needs": needs})


def test_a_pack_operator_declares_the_multiple_it_needs(installed_pack, crop48):
    installed_pack(register_decimate)
    check_operator("test-decimate")
    image = crop48[:, :47, :46]
    with pytest.raises(api.ProblemError, match=r"47x46 is not divisible by 3.*crop it to 45x45"):
        api.simulate(image, "test-decimate:factor=3")
    problem = api.simulate(image, "test-decimate:factor=3", crop=True)
    assert problem.x_true.shape == (1, 1, 45, 45) and problem.y.shape == (1, 1, 15, 15)
    torch.testing.assert_close(problem.x_true[0], torch.from_numpy(crop48[:, :45, :45]))
    assert api.from_measurement(problem.y[0], "test-decimate").op.x_shape == (1, 45, 45)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_requested_without_cuda(crop48):
    with pytest.raises(api.ProblemError, match=r"CUDA.*not available.*cpu"):
        api.simulate(crop48, "denoise", device="cuda")
    with pytest.raises(api.ProblemError, match="CUDA"):
        api.from_measurement(crop48, "denoise", device="cuda")
    assert api.resolve_device("auto") == torch.device("cpu")


def test_unknown_device():
    with pytest.raises(api.ProblemError, match="unknown device 'tpu'"):
        api.resolve_device("tpu")


@pytest.mark.parametrize("noise", [-0.1, float("nan"), float("inf")])
def test_bad_noise(crop48, noise):
    with pytest.raises(api.ProblemError, match="noise must be >= 0"):
        api.simulate(crop48, "denoise", noise=noise)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_iter": 0}, "max_iter must be a positive integer"),
        ({"max_iter": 2.5}, "max_iter must be a positive integer"),
        ({"tol": -1e-3}, "tol must be a number >= 0"),
        ({"tol": float("nan")}, "tol must be a number >= 0"),
    ],
)
def test_bad_run_options(crop48, options, message):
    problem = api.simulate(crop48, "denoise")
    with pytest.raises(api.ProblemError, match=message):
        api.reconstruct(problem, **options)
    with pytest.raises(api.ProblemError, match=message):
        api.run(problem, **options)  # checked when called, not on first next()


def test_one_request_serves_run_reconstruct_and_spectral_radius(crop48):
    problem = api.simulate(crop48, "deblur:sigma=1.0", noise=0.01)
    request = api.Request(prior="tv:weight=0.02", max_iter=6, tol=0)
    seen = []
    solution = api.reconstruct(problem, request, on_iterate=seen.append)
    streamed = list(api.run(problem, request))
    assert [it.k for it in seen] == list(range(1, 7)) == [it.k for it in streamed]
    assert solution.history["residual"] == [it.residual for it in seen]
    assert torch.equal(solution.x, streamed[-1].x)
    by_keywords = api.reconstruct(problem, prior="tv:weight=0.02", max_iter=6, tol=0)
    assert by_keywords.history["residual"] == solution.history["residual"]
    settled = request.settled()
    assert (settled.solver, settled.accel, settled.tol) == ("pnp-pgm", "none", 0)
    assert settled.config() == {"prior": "tv:weight=0.02", "solver": "pnp-pgm", "accel": "none",
                                "max_iter": 6, "tol": 0, "stop_on": "residual",
                                "continuation": None}  # fmt: skip
    assert api.spectral_radius(problem, request, iters=3) > 0
    with pytest.raises(api.ProblemError, match="not both"):
        api.reconstruct(problem, request, max_iter=3)
    with pytest.raises(api.ProblemError, match=r"unknown solve options \['iterations'\]"):
        api.reconstruct(problem, iterations=3)
    assert settled.stop_on == "residual"
    with pytest.raises(api.RequestError, match="stop_on must be one of residual, change"):
        api.Request(stop_on="iterations")
    with pytest.raises(api.RequestError, match="solver must be a spec") as err:
        api.Request(solver=3)
    assert err.value.field == "solver"


def test_sigma_continuation_runs_as_one_solve(crop48, monkeypatch):
    problem = api.simulate(crop48, "inpaint:p=0.5", noise=0.01)
    built = []
    real_build = api.build_prior
    monkeypatch.setattr(api, "build_prior", lambda spec, **kw: built.append(spec)
                        or real_build(spec, **kw))  # fmt: skip
    request = api.Request(prior="dncnn-awgn", solver="pnp-admm", max_iter=13, tol=0,
                          continuation=api.Continuation(start=0.2, stages=3))  # fmt: skip
    solution = api.reconstruct(problem, request)
    assert [float(s.rsplit("=", 1)[1]) for s in built] == pytest.approx(
        [0.2, 0.2 * 0.15**0.5, 0.03], rel=1e-4
    )
    its = list(api.run(problem, request))
    assert [it.k for it in its] == list(range(1, 14))  # 4 + 4 + 5, numbered as one solve
    assert [it.status for it in its[:-1]] == [Status.RUNNING] * 12
    assert its[-1].status is Status.MAX_ITER and solution.iterations == 13
    assert [it.seconds for it in its] == sorted(it.seconds for it in its)
    assert request.config()["continuation"] == {"start": 0.2, "stages": 3}
    with pytest.raises(api.RequestError, match="needs a prior with a sigma option"):
        api.reconstruct(problem, prior="tv", continuation=api.Continuation())
    with pytest.raises(api.RequestError, match="must exceed the prior's"):
        api.reconstruct(problem, prior="dncnn-awgn:sigma=0.3", continuation=api.Continuation())
    with pytest.raises(api.RequestError, match="stages must be an integer"):
        api.Continuation(stages=1)


@pytest.mark.parametrize(
    ("kind", "registry", "spec"),
    [
        ("operator", operators, "blur"),
        ("prior", priors, "bm3d"),
        ("solver", solvers, "cg"),
        ("accelerator", accelerators, "broyden"),
    ],
)
def test_unknown_names_list_the_known_ones(crop48, kind, registry, spec):
    problem = api.simulate(crop48, "denoise")
    calls = {
        "operator": lambda: api.simulate(crop48, spec),
        "prior": lambda: api.reconstruct(problem, prior=spec, max_iter=1),
        "solver": lambda: api.reconstruct(problem, solver=spec, max_iter=1),
        "accelerator": lambda: api.reconstruct(problem, accel=spec, max_iter=1),
    }
    with pytest.raises(SpecError, match=f"unknown {kind} '{spec}'") as err:
        calls[kind]()
    assert all(name in str(err.value) for name in registry.names())


@pytest.mark.parametrize(
    ("operator", "message"),
    [
        ("mri:rate=0", r"rate must lie in \(0, 1\]"),
        ("mri:rate=1.5", r"rate must lie in \(0, 1\]"),
        ("inpaint:p=1.0", r"p must lie in \[0, 1\)"),
        ("inpaint:p=-0.1", r"p must lie in \[0, 1\)"),
        ("deblur:sigma=-1", "sigma must be finite and >= 0"),
        ("sr:scale=2,sigma=-0.5", "sigma must be finite and >= 0"),
        ("sr:scale=5", "scale must be 2, 3 or 4"),
        ("sr:scale=abc", "cannot read 'abc' as int"),
        ("mri:rate=abc", "cannot read 'abc' as float"),
        ("mri:rat=0.1", "has no option 'rat'; options: rate="),
    ],
)
def test_out_of_range_operator_parameters(crop48, operator, message):
    with pytest.raises(ValueError, match=message):
        api.simulate(crop48, operator)


@pytest.mark.parametrize(
    ("solver", "prior", "message"),
    [
        ("pnp-pgm:gamma=0", "tv", "gamma must be a positive number"),
        ("red-sd:gamma=-1", "tv", "gamma must be a positive number"),
        ("pnp-admm:gamma=0", "tv", "gamma must be a positive number"),
        ("pnp-pgm:tau=-1", "tv", "tau must be a positive number"),
        ("pnp-pgm", "tv:weight=-1", "TV weight must be ≥ 0"),
    ],
)
def test_out_of_range_solver_and_prior_parameters(crop48, solver, prior, message):
    problem = api.simulate(crop48, "denoise")
    with pytest.raises(ValueError, match=message):
        api.reconstruct(problem, solver=solver, prior=prior, max_iter=1)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((48, 48), 255.0), r"must lie in \[0, 1\].*divide 8-bit data by 255"),
        (np.full((48, 48), np.nan), "finite"),
        (np.zeros((2, 48, 48)), "C = 1 or 3"),
        (np.zeros((2, 1, 48, 48)), "C = 1 or 3"),
    ],
    ids=["255", "nan", "2-channel", "batch"],
)
def test_bad_image_arrays(image, message):
    with pytest.raises(ImageError, match=message):
        api.simulate(image, "denoise")


def test_every_error_is_an_input_error():
    for error in (api.ProblemError, ImageError, OperatorError, SpecError):
        assert issubclass(error, api.INPUT_ERRORS)


# -- priors from checkpoints -----------------------------------------------------------


def test_checkpoint_path_prior(tmp_path, crop48):
    torch.manual_seed(0)
    net = DnCNN(channels=1, depth=3, width=4, batch_norm=False)
    path = save_checkpoint(tmp_path / "tiny.safetensors", net, {"sigma": 0.05, "name": "tiny"})
    prior = api.build_prior(str(path))
    assert prior.name == "tiny" and prior.sigma == 0.05
    x = torch.from_numpy(crop48)[None]
    with torch.no_grad():
        torch.testing.assert_close(prior.denoise(x), net(x, 0.05))
    problem = api.simulate(crop48, "denoise", noise=0.05)
    solution = api.reconstruct(problem, prior=str(path), solver="fb", max_iter=3, tol=0)
    assert solution.iterations == 3 and torch.isfinite(solution.x).all()
    # the checkpoint prior really is used: it differs from running with no prior
    plain = api.reconstruct(problem, prior="identity", solver="fb", max_iter=3, tol=0)
    assert not torch.allclose(solution.x, plain.x, atol=1e-4)


def test_missing_checkpoint_path(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.safetensors"):
        api.build_prior(str(tmp_path / "missing.safetensors"))


def test_build_prior_passes_priors_through():
    tv = api.build_prior("tv:weight=0.1")
    assert api.build_prior(tv) is tv


def test_mcnet_backbone_output_may_overshoot(crop48):
    problem = api.simulate(crop48, "sr:scale=2", noise=0.0)
    w = problem.x_init() * 1.2 - 0.1  # interpolation overshoots [0, 1]; w is not a picture
    assert float(w.max()) > 1.01
    solution = api.reconstruct(
        problem, prior="tv", solver="mcnet-admm:eps=0", w=w, max_iter=20, tol=0
    )
    from deq_explorer.metrics import consistency

    assert consistency(problem.op, solution.x, problem.y) < 1e-3


def test_backbone_output_feeds_mcnet(crop48, tmp_path):
    from deq_explorer.priors.nets import SRCNN

    torch.manual_seed(0)
    net = SRCNN(width=8, scale=2)
    path = save_checkpoint(tmp_path / "sr2.safetensors", net, {"mode": "backbone"})
    problem = api.simulate(crop48, "sr-bicubic:scale=2", noise=0.0)
    w = api.backbone(problem, path)
    with torch.no_grad():
        assert w.shape == (1, 1, 48, 48) and torch.allclose(w, net(problem.y), atol=1e-6)
    solution = api.reconstruct(problem, prior="tv", solver="mcnet-admm:eps=0", w=w, max_iter=5)
    assert metrics.consistency(problem.op, solution.x, problem.y) < 1e-4
    with pytest.raises(api.ProblemError, match="not to the image shape"):
        api.backbone(api.simulate(crop48, "sr-bicubic:scale=3", noise=0.0), path)
    with pytest.raises(ValueError, match="no backbone"):
        api.backbone(problem, tmp_path / "missing.safetensors")


def test_a_solve_running_away_is_reported_diverged_not_at_the_cap(crop48):
    """Growth 1.6× an iteration from noise level: past 1e4 in ~35 iterations, 1e10 in ~65."""
    problem = api.simulate(crop48, "deblur:sigma=1.6", noise=0.01)
    solution = api.reconstruct(problem, prior="identity", solver="red-sd:gamma=2.6",
                               accel="none", max_iter=55, tol=0)  # fmt: skip
    assert solution.status.value == "diverged" and solution.iterations < 55
    assert api.DIVERGE_AT == 1e4


def test_tv_weight_follows_the_noise_unless_given(crop48):
    from deq_explorer.priors.classical import tv_problem_defaults
    from deq_explorer.scale import Scale

    assert tv_problem_defaults(Scale(0.05, denoising=True)) == {"weight": pytest.approx(0.04)}
    assert tv_problem_defaults(Scale(0.0, denoising=True)) == {"weight": 1e-3}
    assert tv_problem_defaults(Scale(0.03)) == {"weight": pytest.approx(0.014)}
    sr = api.simulate(crop48, "sr:scale=2", noise=0.01)
    assert api.problem_defaults("tv", sr) == "tv:weight=0.006"
    assert api.problem_defaults("tv:iters=20", sr) == "tv:iters=20,weight=0.006"
    assert api.problem_defaults("tv:weight=0.1", sr) == "tv:weight=0.1"  # the user's wins
    assert api.problem_defaults("identity", sr) == "identity"
    denoise = api.simulate(crop48, "denoise", noise=0.05)
    assert api.problem_defaults("tv", denoise) == "tv:weight=0.04"
    # and the solve uses it: the derived weight beats the fixed 0.05 on SR with little noise
    derived = api.reconstruct(sr, prior="tv", max_iter=60)
    fixed = api.reconstruct(sr, prior="tv:weight=0.05", max_iter=60)
    assert derived.history["psnr"][-1] > fixed.history["psnr"][-1] + 1.0
