"""The headless API: simulate a problem, then reconstruct it with any prior, solver, accelerator.

>>> import deq_explorer.api as dx
>>> problem = dx.simulate("sample:camera", "sr:scale=2", noise=0.01)
>>> solution = dx.reconstruct(problem, prior="tv:weight=0.02", accel="anderson:m=5")

``operator`` simulates the data, ``solve_operator`` (default: the same) is the
model the solver uses: giving a different one sets up an operator-mismatch study.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deq_explorer.checks import resolve_device
from deq_explorer.deq import jacobian
from deq_explorer.errors import DEQExplorerError, ProblemError, RequestError
from deq_explorer.fixedpoint import (
    Accelerator,
    Criterion,
    FixedPointMap,
    Iterate,
    Solution,
    Status,
    StopRule,
    iterate,
)
from deq_explorer.fixedpoint.core import fixed_point
from deq_explorer.fixedpoint.loop import collect
from deq_explorer.images import ImageError, crop_to_multiple, load_image
from deq_explorer.operators.base import LinearOperator
from deq_explorer.operators.needs import image_needs
from deq_explorer.priors.base import Prior
from deq_explorer.registry import (
    Registry,
    SpecError,
    accelerators,
    format_spec,
    operators,
    parse_spec,
    priors,
    solvers,
)
from deq_explorer.scale import Scale, noise_norm, scale_of
from deq_explorer.tuning import (
    METHODS,
    Candidate,
    Tuning,
    drain,
    minimise,
    probe,
    root,
    sure,
)

__all__ = [
    "AUTO",
    "DIVERGE_AT",
    "SOLVE_DEFAULTS",
    "STALL_PATIENCE",
    "STARTS",
    "STOP_ON",
    "Continuation",
    "Cost",
    "Problem",
    "ProblemError",
    "Request",
    "RequestError",
    "auto_option",
    "backbone",
    "build_prior",
    "check_cost",
    "estimate_cost",
    "from_measurement",
    "problem_defaults",
    "problem_scale",
    "reconstruct",
    "resolve_device",
    "run",
    "settings_of",
    "simulate",
    "solve_settings",
    "spectral_radius",
    "start_image",
    "trained_settings",
    "tune",
    "tune_steps",
]

CHECKPOINT_SUFFIXES = (".safetensors", ".pt")


@dataclass(frozen=True)
class Problem:
    """A measurement and the operator to reconstruct it with.

    Attributes
    ----------
    y : Tensor
        Measurement ``(1, *op.y_shape)``.
    op : LinearOperator
        The operator the solver uses (``solve_operator``).
    x_true : Tensor or None
        Ground truth ``(1, C, H, W)``; None for a measurement brought by the user.
    sim_op : LinearOperator or None
        The operator that simulated ``y`` (differs from ``op`` in a mismatch study).
    operator, solve_operator : str
        Their specs.
    noise : float
        AWGN level on the [0, 1] scale.
    seed : int
        Seed of the noise (and of random masks).
    """

    y: Tensor
    op: LinearOperator
    x_true: Tensor | None
    sim_op: LinearOperator | None
    operator: str
    solve_operator: str
    noise: float = 0.0
    seed: int = 0

    @property
    def mismatched(self) -> bool:
        """Whether the data was simulated with another operator than the solver's."""
        return self.operator != self.solve_operator

    def x_init(self) -> Tensor:
        """The operator's starting image ``init(y)``, ``(1, C, H, W)``."""
        with torch.no_grad():
            return self.op.init(self.y)

    def config(self) -> dict[str, object]:
        """JSON-ready description (for metadata and reports)."""
        return {
            "operator": self.operator,
            "solve_operator": self.solve_operator,
            "noise": self.noise,
            "seed": self.seed,
            "image_shape": list(self.op.x_shape),
            "device": str(self.y.device),
        }


def _as_image(image: np.ndarray | Tensor | str | Path, *, unit_range: bool = True) -> Tensor:
    """Any accepted image form → float tensor ``(1, C, H, W)`` (in [0, 1] if ``unit_range``)."""
    if isinstance(image, (str, Path)):
        image = load_image(image)
    t = torch.as_tensor(np.asarray(image) if not isinstance(image, Tensor) else image)
    if t.ndim == 2:
        t = t[None]
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3):
        raise ImageError(
            f"expected an image (H, W), (C, H, W) or (1, C, H, W) with C = 1 or 3, "
            f"got shape {tuple(t.shape)}"
        )
    if t.dtype == torch.bool:
        t = t.float()
    if t.is_complex() or not torch.isfinite(t).all():
        raise ImageError("the image must be real and finite (no NaN/Inf pixels)")
    t = t.float()
    if not unit_range:
        return t
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageError(
            f"image values lie in [{lo:.4g}, {hi:.4g}] but must lie in [0, 1]: rescale the "
            "array (e.g. divide 8-bit data by 255) or read files with images.load_image"
        )
    return t.clamp(0.0, 1.0)


def _build_operator(spec: str, shape: tuple[int, int, int], device, dtype) -> LinearOperator:
    image_needs(spec).check_channels(shape, spec)
    return operators.build(spec, shape=shape, device=device, dtype=dtype)


def simulate(
    image: np.ndarray | Tensor | str | Path,
    operator: str,
    *,
    noise: float = 0.0,
    seed: int = 0,
    solve_operator: str | None = None,
    device: str = "auto",
    dtype: torch.dtype = torch.float32,
    crop: bool = False,
) -> Problem:
    """Simulate ``y = A x + e`` and bind the operator the solver will use.

    Parameters
    ----------
    image : array, tensor, path or ``"sample:NAME"``
        Ground truth ``(H, W)`` or ``(C, H, W)`` in [0, 1].
    operator : str
        Spec of the operator that makes the data, e.g. ``"mri:rate=0.1"``.
    noise : float
        AWGN standard deviation on the [0, 1] scale (only on measured entries).
    seed : int
        Seed of the noise.
    solve_operator : str, optional
        Spec of the operator the solver uses (default: ``operator``). It must
        produce measurements of the same shape.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    crop : bool
        Crop the image to the size multiple its operators need instead of refusing it
        (:func:`~deq_explorer.operators.needs.image_needs`).
    """
    if not (isinstance(noise, numbers.Real) and math.isfinite(noise) and noise >= 0):
        raise ProblemError(f"noise must be >= 0 (the AWGN sigma on the [0, 1] scale), got {noise}")
    dev = resolve_device(device)
    solve_operator = solve_operator or operator
    x = _as_image(image)
    multiple = math.lcm(image_needs(operator).multiple, image_needs(solve_operator).multiple)
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        cropped = crop_to_multiple(x[0].cpu().numpy(), multiple)
        if not crop:
            for spec in dict.fromkeys((operator, solve_operator)):  # bad options first
                _build_operator(spec, tuple(cropped.shape), torch.device("cpu"), dtype)
            h, w = x.shape[-2:]
            h_crop, w_crop = cropped.shape[-2:]
            raise ProblemError(
                f"image size {h}x{w} is not divisible by {multiple}, as the operator needs: "
                f"crop it to {h_crop}x{w_crop} (crop=True, or --crop on the CLI)"
            )
        x = torch.from_numpy(cropped)[None]
    x = x.to(device=dev, dtype=dtype)
    shape = tuple(x.shape[1:])
    sim_op = _build_operator(operator, shape, dev, dtype)
    op = (
        sim_op if solve_operator == operator else _build_operator(solve_operator, shape, dev, dtype)
    )
    if tuple(op.y_shape) != tuple(sim_op.y_shape):
        raise ProblemError(
            f"solve operator {solve_operator!r} measures {tuple(op.y_shape)} but the data from "
            f"{operator!r} is {tuple(sim_op.y_shape)}; pick operators with the same output size"
        )
    if op is not sim_op and _complex_data(op) != _complex_data(sim_op):
        kinds = {True: "complex (k-space)", False: "real images"}
        raise ProblemError(
            f"solve operator {solve_operator!r} measures {kinds[_complex_data(op)]} but the data "
            f"from {operator!r} are {kinds[_complex_data(sim_op)]}; a mismatch study needs two "
            "operators of the same measurement domain (e.g. mri:rate=0.1 with mri:rate=0.2)"
        )
    if not (isinstance(seed, numbers.Integral) and 0 <= seed < 2**63):
        raise ProblemError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        y = sim_op.measure(x, float(noise), generator)
    return Problem(y, op, x, sim_op, operator, solve_operator, float(noise), int(seed))


def _complex_data(op: LinearOperator) -> bool:
    """Whether ``op`` measures complex values (k-space), probed on one zero image."""
    with torch.no_grad():
        return bool(
            op.A(torch.zeros((1, *op.x_shape), dtype=op.dtype, device=op.device)).is_complex()
        )


def from_measurement(
    y: np.ndarray | Tensor,
    operator: str,
    *,
    noise: float = 0.0,
    device: str = "auto",
    dtype: torch.dtype = torch.float32,
    reference: np.ndarray | Tensor | str | Path | None = None,
) -> Problem:
    """A problem from a measurement the user brings (no ground truth unless ``reference``).

    ``y`` has the operator's measurement shape ``(C, h, w)`` (or ``(h, w)``);
    the image shape is ``y``'s times the multiple the operator declares
    (:func:`~deq_explorer.operators.needs.image_needs`; the factor of super-resolution).
    MRI measurements are complex k-space arrays in the orthonormal-FFT layout.
    ``noise`` is the data's AWGN level where known (0: unknown); priors derive
    their defaults from it (:func:`problem_defaults`). ``reference`` (an image
    of the operator's image shape, or a file) turns on PSNR/SSIM.
    """
    if not (isinstance(noise, numbers.Real) and math.isfinite(noise) and noise >= 0):
        raise ProblemError(f"noise must be >= 0 (the AWGN sigma on the [0, 1] scale), got {noise}")
    dev = resolve_device(device)
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y)
    if t.ndim == 2:
        t = t[None]
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or not torch.isfinite(t.abs() if t.is_complex() else t).all():
        raise ProblemError(f"a measurement must be a finite (C, h, w) array, got {tuple(t.shape)}")
    multiple = image_needs(operator).multiple
    shape = (t.shape[0], t.shape[1] * multiple, t.shape[2] * multiple)
    op = _build_operator(operator, shape, dev, dtype)
    if tuple(op.y_shape) != tuple(t.shape):
        raise ProblemError(
            f"operator {operator!r} measures {tuple(op.y_shape)}, the measurement is "
            f"{tuple(t.shape)}"
        )
    measures_complex = _complex_data(op)
    if t.is_complex() != measures_complex:
        want = "complex k-space" if measures_complex else "a real image"
        raise ProblemError(
            f"operator {operator!r} measures {want}; the measurement is "
            f"{'complex' if t.is_complex() else 'real'}"
        )
    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    y_t = t.to(device=dev, dtype=complex_dtype if t.is_complex() else dtype)[None]
    x_true = None
    if reference is not None:
        x_true = _as_image(reference).to(device=dev, dtype=dtype)
        if tuple(x_true.shape[1:]) != tuple(op.x_shape):
            raise ProblemError(
                f"the reference is {tuple(x_true.shape[1:])}; operator {operator!r} makes "
                f"images of {tuple(op.x_shape)} from this measurement"
            )
    return Problem(y_t, op, x_true, None, operator, operator, float(noise))


def _checkpoint_path(spec: str) -> bool:
    """Whether a prior spec names a checkpoint file rather than a registry entry.

    An existing file wins over a spec (``ckpt_12:30.safetensors`` is a path, not options).
    """
    path = Path(spec)
    return path.suffix in CHECKPOINT_SUFFIXES and (path.is_file() or ":" not in path.name)


def build_prior(spec: str | Prior, device: str | torch.device | None = None) -> Prior:
    """A prior from a registry spec, a checkpoint path (.safetensors/.pt), or a Prior."""
    if isinstance(spec, Prior):
        return spec.to(device)
    if _checkpoint_path(spec):
        from deq_explorer.priors.checkpoint import load_prior

        return load_prior(spec).to(device)
    prior = priors.build(spec, device=device)
    return prior.to(device)


def backbone(problem: Problem, spec: str | Path) -> Tensor:
    """The output ``w = N(y)`` of a trained backbone (MCNet's starting image), ``(1, C, H, W)``.

    ``spec`` is a shipped backbone's name (e.g. ``"srcnn-x2"``) or a checkpoint
    path. The backbone must map this problem's measurement to its image shape.
    """
    from deq_explorer.priors.checkpoint import load_backbone

    net, meta = load_backbone(spec)
    y = problem.y
    if torch.is_complex(y):
        raise ProblemError(f"backbone {str(spec)!r} needs a real measurement, not k-space")
    net = net.to(device=y.device, dtype=y.dtype)
    with torch.inference_mode():
        w = net(y)
    want = (y.shape[0], *problem.op.x_shape)
    if tuple(w.shape) != want:
        raise ProblemError(
            f"backbone {str(spec)!r} (trained on {meta.get('operators', '?')}) maps the "
            f"measurement {tuple(y.shape)} to {tuple(w.shape)}, not to the image shape {want}"
        )
    return w.clone()


#: the starting images a solve can take besides the operator's ``init(y)``
STARTS = ("init", "zero", "adjoint", "backbone")


def start_image(problem: Problem, start: str = "init", backbone_spec: str | None = None) -> Tensor:
    """The image a solve starts from (``w``; MCNet's backbone output), ``(1, C, H, W)``.

    ``start`` is ``"init"`` (the operator's ``init(y)``), ``"zero"``, ``"adjoint"``
    (``Aᵀy``) or ``"backbone"`` (:func:`backbone` applied with ``backbone_spec``).
    """
    if start not in STARTS:
        raise ProblemError(f"unknown start {start!r}; choose one of {', '.join(STARTS)}")
    if (start == "backbone") != (backbone_spec is not None):
        raise ProblemError(
            "a backbone start needs a backbone (a shipped name such as srcnn-x2, or a "
            "checkpoint), and a backbone is only used as the start"
        )
    if start == "backbone":
        return backbone(problem, backbone_spec)
    op = problem.op
    if start == "zero":
        return torch.zeros((1, *op.x_shape), dtype=op.dtype, device=op.device)
    if start == "adjoint":
        with torch.no_grad():
            return op.A_adjoint(problem.y).real.to(op.dtype)
    return problem.x_init()


#: an iterate this far outside the images' [0, 1] range has diverged: reported as such (the
#: CLI exits 3), not iterated to the cap (``nesterov:safeguard=0`` on SR ×2 reached −123 dB
#: and was still "max_iter" under the core's generic 1e10)
DIVERGE_AT = 1e4
#: a solve whose smallest residual has not fallen by 1 % in this many iterations ends as
#: "stalled" instead of iterating to the cap (an accelerator circling at 3e-4, a map that is
#: not contractive at these settings): the status says so and the budget is not spent
STALL_PATIENCE = 100
#: what ``Request.stop_on`` may name: the fixed-point residual or the iterate change
STOP_ON = tuple(c.value for c in Criterion)


#: the value of a prior option that :func:`tune` chooses (``tv:weight=auto``)
AUTO = "auto"

#: what a solve uses where neither the caller nor the prior's training names a setting
SOLVE_DEFAULTS: dict[str, Any] = {"solver": "pnp-pgm", "accel": "none", "tol": 1e-4}


def _prior_metadata(prior: str | Prior) -> dict[str, Any]:
    if not isinstance(prior, str):
        return dict(getattr(prior, "metadata", None) or {})
    if _checkpoint_path(prior):
        from deq_explorer.priors.checkpoint import read_metadata

        try:
            return read_metadata(prior)
        except (ValueError, OSError):
            return {}  # build_prior reports the missing or bad file
    try:
        name = parse_spec(prior)[0]
    except SpecError:
        return {}
    return priors.entry(name).metadata if name in priors else {}


def trained_settings(prior: str | Prior) -> dict[str, Any]:
    """The solve settings a learned prior was trained with, from its checkpoint's metadata.

    Returns
    -------
    dict
        Those of ``solver`` (a full spec, γ and τ included), ``accel`` and ``tol``
        the prior records; ``{}`` for priors without training (TV, identity, AWGN
        denoisers). Its noise input σ is the prior's own ``sigma`` default.
    """
    return settings_of(_prior_metadata(prior))


def settings_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """The ``solver``, ``accel`` and ``tol`` a checkpoint's metadata records (those present).

    Solver options derived from the problem (MCNet's ε, the noise norm) are left out of
    the solver: the problem being solved gives them, not the one trained on.
    """
    out = {k: metadata[k] for k in ("solver", "accel") if isinstance(metadata.get(k), str)}
    if "solver" in out:
        try:
            name, given = parse_spec(out["solver"])
        except SpecError:
            return out  # the solve reports it
        derived = {o.name for o in solvers.entry(name).schema() if o.derived} if (
            name in solvers) else set()  # fmt: skip
        out["solver"] = format_spec(name, {k: v for k, v in given.items() if k not in derived})
    tol = metadata.get("tol")
    if isinstance(tol, (int, float)) and not isinstance(tol, bool):
        out["tol"] = float(tol)
    return out


def solve_settings(
    prior: str | Prior,
    *,
    solver: str | None = None,
    accel: str | None = None,
    tol: float | None = None,
    fallback: dict[str, Any] = SOLVE_DEFAULTS,
) -> dict[str, Any]:
    """Solve settings ``solver``, ``accel``, ``tol``: the caller's, else the prior's, else fallback.

    Each setting is chosen on its own: ``solver="pnp-admm"`` keeps the prior's
    trained accelerator and tolerance.
    """
    given = {"solver": solver, "accel": accel, "tol": tol}
    trained = trained_settings(prior)
    return {k: v if v is not None else trained.get(k, fallback[k]) for k, v in given.items()}


@dataclass(frozen=True)
class Continuation:
    """A decreasing noise-level schedule for a denoiser prior (σ continuation).

    The solve runs in ``stages`` warm-started stages, the prior's noise input going
    geometrically from ``start`` down to its own σ; each stage starts from the image
    the previous one ended with, and all but the last run their share of the budget
    in full (the tolerance applies to the last). This is the reference PnP-ADMM of
    the second seed paper: a large σ first fills in what the data leave open
    (inpainting), the small σ then sharpens.

    Attributes
    ----------
    start : float
        σ of the first stage (> the prior's σ).
    stages : int
        Number of stages (≥ 2).
    """

    start: float = 0.2
    stages: int = 5

    def __post_init__(self) -> None:
        if not (isinstance(self.start, numbers.Real) and math.isfinite(self.start)
                and self.start > 0):  # fmt: skip
            raise RequestError("continuation", f"start must be a σ > 0, got {self.start!r}")
        n = self.stages
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
            raise RequestError("continuation", f"stages must be an integer ≥ 2, got {n!r}")

    def sigmas(self, final: float) -> list[float]:
        """The σ of each stage, from :attr:`start` down to ``final``."""
        if not final < self.start:
            raise RequestError("continuation", f"start σ {self.start} must exceed the prior's "
                               f"σ {final}")  # fmt: skip
        ratio = (final / self.start) ** (1 / (self.stages - 1))
        return [self.start * ratio**i for i in range(self.stages - 1)] + [final]


@dataclass(frozen=True, kw_only=True)
class Request:
    """How to solve a problem: the prior, the solver, its accelerator, budget and start.

    Validated once, here; :func:`run`, :func:`reconstruct`, the CLI and the GUI all take
    one. ``solver``, ``accel`` and ``tol`` left at None are chosen by :meth:`settled`.

    Attributes
    ----------
    prior : str or Prior
        Registry spec, checkpoint path or :class:`Prior`.
    solver, accel : str or None
        Registry specs (None: the prior's trained setting, else the defaults).
    max_iter : int
        Iteration budget (≥ 1).
    tol : float or None
        Value of the stopping criterion to stop at (0 runs all ``max_iter``).
    stop_on : str
        ``"residual"`` (the relative fixed-point residual ``‖T(z) − z‖/‖z‖``) or
        ``"change"`` (the relative iterate change; the same without acceleration).
    continuation : Continuation or None
        Solve in stages with a decreasing denoiser σ (needs a registry prior with a
        ``sigma`` option).
    w : Tensor or None
        The start image ``(1, C, H, W)`` (MCNet's backbone output; default ``init(y)``).
    """

    prior: str | Prior = "tv"
    solver: str | None = None
    accel: str | None = None
    max_iter: int = 100
    tol: float | None = None
    stop_on: str = "residual"
    continuation: Continuation | None = None
    w: Tensor | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        m = self.max_iter
        if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
            raise RequestError("max_iter", f"must be a positive integer, got {m!r}")
        t = self.tol
        if t is not None and not (
            isinstance(t, numbers.Real) and not isinstance(t, bool) and t >= 0
        ):
            raise RequestError("tol", f"must be a number >= 0 (0 runs all max_iter), got {t!r}")
        if not isinstance(self.prior, (str, Prior)):
            raise RequestError("prior", f"must be a spec, a checkpoint path or a Prior, got "
                               f"{type(self.prior).__name__}")  # fmt: skip
        if self.continuation is not None and not isinstance(self.continuation, Continuation):
            raise RequestError("continuation", "must be an api.Continuation(start, stages)")
        if self.stop_on not in STOP_ON:
            raise RequestError("stop_on", f"must be one of {', '.join(STOP_ON)}, got "
                               f"{self.stop_on!r}")  # fmt: skip
        for name in ("solver", "accel"):
            if not isinstance(getattr(self, name), (str, type(None))):
                raise RequestError(name, f"must be a spec string, got {getattr(self, name)!r}")

    def settled(self, fallback: dict[str, Any] = SOLVE_DEFAULTS) -> Request:
        """This request with ``solver``, ``accel``, ``tol`` filled in (:func:`solve_settings`)."""
        chosen = solve_settings(
            self.prior, solver=self.solver, accel=self.accel, tol=self.tol, fallback=fallback
        )
        return dataclasses.replace(self, **chosen)

    @property
    def label(self) -> str:
        """The prior's spec, or the name of a :class:`Prior` object."""
        return self.prior if isinstance(self.prior, str) else self.prior.name

    def config(self) -> dict[str, Any]:
        """JSON-ready description: the prior's spec or name and the solve settings."""
        return {"prior": self.label, "solver": self.solver, "accel": self.accel,
                "max_iter": int(self.max_iter), "tol": self.tol, "stop_on": self.stop_on,
                "continuation": None if self.continuation is None else dataclasses.asdict(
                    self.continuation)}  # fmt: skip


def _request(request: Request | None, options: dict[str, Any]) -> Request:
    """The request a call asks for: ``request``, or one made of keyword ``options``."""
    if request is None:
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(Request)})
        if unknown:
            raise ProblemError(f"unknown solve options {unknown}; a Request has "
                               f"{[f.name for f in dataclasses.fields(Request)]}")  # fmt: skip
        return Request(**options)
    if options:
        raise ProblemError(f"give a Request or keyword options, not both ({sorted(options)})")
    if not isinstance(request, Request):
        raise ProblemError(f"expected an api.Request, got {type(request).__name__}")
    return request


def run(
    problem: Problem,
    request: Request | None = None,
    /,
    *,
    stop: Callable[[], bool] | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
    **options: Any,
) -> Iterator[Iterate]:
    """Stream the iterations of a reconstruction (see :func:`deq_explorer.fixedpoint.iterate`).

    ``request`` says what to solve with; keyword ``options`` (the fields of
    :class:`Request`: ``prior``, ``solver``, ``accel``, ``max_iter``, ``tol``, ``w``)
    make one instead. Settings left at None take the prior's trained ones
    (:func:`trained_settings`), else :data:`SOLVE_DEFAULTS`. ``stop`` is polled
    between iterations. A prior option given as ``auto`` is first chosen by :func:`tune`
    (when the iterator is first advanced), each candidate passed to ``on_candidate``.
    """
    request = _request(request, options)
    if auto_option(request.prior) is not None:
        return _tuned(problem, request, stop, on_candidate)
    if request.continuation is not None:
        return _stages(problem, request.settled(), stop)
    fp_map, accelerator, rule = _prepare(problem, request)
    return iterate(fp_map, accelerator, rule, reference=problem.x_true, stop=stop)


def _tuned(
    problem: Problem,
    request: Request,
    stop: Callable[[], bool] | None,
    on_candidate: Callable[[Candidate], None] | None,
) -> Iterator[Iterate]:
    """Tune the ``auto`` option (:func:`tune`), then stream the solve with its value."""
    tuning = tune(problem, request, stop=stop, on_candidate=on_candidate)
    yield from run(problem, dataclasses.replace(request, prior=tuning.spec), stop=stop)


def auto_option(prior: str | Prior) -> str | None:
    """The option a prior spec gives as ``auto`` for :func:`tune` (None: none does;
    several: refused)."""
    if not isinstance(prior, str) or _checkpoint_path(prior):
        return None
    try:
        _, given = parse_spec(prior)
    except SpecError:
        return None  # build_prior reports it
    autos = [k for k, v in given.items() if v.strip().lower() == AUTO]
    if len(autos) > 1:
        raise RequestError("prior", f"only one option can be {AUTO!r}, got {autos}")
    return autos[0] if autos else None


def tune(
    problem: Problem,
    request: Request | None = None,
    /,
    *,
    method: str = METHODS[0],
    stop: Callable[[], bool] | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
    **options: Any,
) -> Tuning:
    """Choose the prior option given as ``auto`` (e.g. ``tv:weight=auto``) from the data.

    ``method`` is ``"sure"`` (predicted-risk SURE, two solves per candidate) or
    ``"discrepancy"`` (one); see :mod:`deq_explorer.tuning`. Every solve is as
    ``request`` says (its budget, solver and accelerator), warm-started from the
    nearest candidate before it. The search starts at the value the option takes
    without ``auto`` (derived from the problem where the prior has a rule,
    :func:`problem_defaults`). Without noise (``problem.noise == 0``) neither method
    has anything to go by: that start value is returned and the note says so.

    Returns
    -------
    Tuning
        The value, the prior's spec with it, and every candidate tried.
    """
    steps = tune_steps(problem, request, method=method, stop=stop, **options)
    return drain(steps, on_candidate)


def tune_steps(
    problem: Problem,
    request: Request | None = None,
    /,
    *,
    method: str = METHODS[0],
    stop: Callable[[], bool] | None = None,
    **options: Any,
) -> Generator[Candidate, None, Tuning]:
    """:func:`tune` as a generator: yields each candidate once solved, returns the
    :class:`~deq_explorer.tuning.Tuning` (for a GUI worker that shows candidates as they come)."""
    request = _request(request, options)
    if method not in METHODS:
        raise RequestError("method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    option = auto_option(request.prior)
    if option is None:
        raise RequestError("prior", f"no option of {request.prior!r} is {AUTO!r} (e.g. "
                           f"'tv:weight={AUTO}')")  # fmt: skip
    name, given = parse_spec(request.prior)
    rest = {k: v for k, v in given.items() if k != option}
    if name not in priors or option not in priors.entry(name).options():
        raise RequestError("prior", f"{name!r} has no option {option!r} to tune")
    start = priors.options_of(problem_defaults(format_spec(name, rest), problem))[1][option]
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not start > 0:
        raise RequestError("prior", f"{name}: option {option!r} must be a positive number to "
                           f"be tuned, its default is {start!r}")  # fmt: skip
    start, sigma, op, y = float(start), float(problem.noise), problem.op, problem.y

    def spec(value: float) -> str:
        return format_spec(name, {**rest, option: f"{value:.6g}"})

    if sigma <= 0:
        return Tuning(option, start, spec(start), method, (), "no noise: there is nothing to "
                      "estimate the strength from, the default value is kept")  # fmt: skip
    solutions: dict[float, Tensor] = {}

    def solve(value: float, data: Problem, w: Tensor | None) -> Solution:
        return reconstruct(data, dataclasses.replace(request, prior=spec(value), w=w), stop=stop)

    def nearest(value: float) -> Tensor | None:
        near = min(solutions, key=lambda v: abs(math.log(v / value)), default=None)
        return request.w if near is None else solutions[near]

    b = probe(op, y, problem.seed + 1)  # independent of the noise (drawn with seed)
    probed = dataclasses.replace(problem, y=y + sigma * b)
    norm = noise_norm(op, y, sigma)

    def candidate(value: float) -> Candidate:
        first = solve(value, problem, nearest(value))
        solutions[value] = first.x
        if method == "sure":
            second = solve(value, probed, first.x)
            score = sure(op, y, sigma, first.x, second.x, b)
            iterations = first.iterations + second.iterations
        else:
            with torch.no_grad():
                score = float(torch.linalg.vector_norm(op.A(first.x) - y)) / norm
            iterations = first.iterations
        return Candidate(value, score, iterations)

    search = minimise if method == "sure" else root
    value, candidates, note = yield from search(candidate, start, stop=stop)
    return Tuning(option, value, spec(value), method, candidates, note)


def _with_sigma(prior: str, sigma: float) -> str:
    """``prior`` (a registry spec with a ``sigma`` option) with its σ set to ``sigma``."""
    name, options = parse_spec(prior)
    return format_spec(name, {**options, "sigma": f"{sigma:.6g}"})


def _stages(
    problem: Problem, request: Request, stop: Callable[[], bool] | None
) -> Iterator[Iterate]:
    """The iterates of a σ-continuation solve, numbered and timed as one solve."""
    prior = request.prior
    if not (isinstance(prior, str) and not _checkpoint_path(prior)
            and "sigma" in priors.entry(parse_spec(prior)[0]).options()):  # fmt: skip
        raise RequestError("continuation", f"needs a prior with a sigma option (a denoiser "
                           f"such as dncnn-awgn), not {prior!r}")  # fmt: skip
    sigmas = request.continuation.sigmas(float(priors.options_of(prior)[1]["sigma"]))
    share, extra = divmod(request.max_iter, len(sigmas))
    if share < 1:
        raise RequestError("max_iter", f"must be at least the {len(sigmas)} stages, got "
                           f"{request.max_iter}")  # fmt: skip
    w, k0, t0 = request.w, 0, 0.0
    for i, sigma in enumerate(sigmas):
        last = i == len(sigmas) - 1
        stage = dataclasses.replace(
            request, prior=_with_sigma(prior, sigma), max_iter=share + (extra if last else 0),
            tol=request.tol if last else 0.0, continuation=None, w=w,
        )  # fmt: skip
        for it in run(problem, stage, stop=stop):
            ends = last or it.status in (Status.DIVERGED, Status.STOPPED)
            status = it.status if ends else Status.RUNNING
            yield dataclasses.replace(it, k=k0 + it.k, seconds=t0 + it.seconds, status=status)
        if it.status in (Status.DIVERGED, Status.STOPPED):
            return
        w, k0, t0 = it.x, k0 + it.k, t0 + it.seconds


def reconstruct(
    problem: Problem,
    request: Request | None = None,
    /,
    *,
    stop: Callable[[], bool] | None = None,
    on_iterate: Callable[[Iterate], None] | None = None,
    **options: Any,
) -> Solution:
    """Run a reconstruction to its end; see :func:`run`. ``on_iterate`` sees every iterate."""
    return collect(run(problem, _request(request, options), stop=stop), on_iterate)


def spectral_radius(
    problem: Problem, request: Request | None = None, /, *, iters: int = 30, **options: Any
) -> float:
    """Spectral radius of the solver map's Jacobian ``∂T/∂z`` at the solve's end point.

    Below 1, ``T`` is locally contractive there (plain iteration converges near
    it); model cards report it for the learned priors. The solve is given as to
    :func:`reconstruct` (a ``continuation`` is not run: the map is the prior's own σ);
    ``iters`` power iterations from a seeded start.
    """
    fp_map, accelerator, rule = _prepare(problem, _request(request, options))
    with torch.no_grad():
        end = fixed_point(fp_map.T, fp_map.z0, accelerator=accelerator, rule=rule)
    return jacobian.spectral_radius(fp_map.T, end.z, iters, torch.Generator().manual_seed(0))


def problem_scale(problem: Problem) -> Scale:
    """The facts of ``problem`` its defaults scale with (:mod:`deq_explorer.scale`)."""
    denoising = parse_spec(problem.solve_operator)[0] == "denoise"
    return scale_of(problem.op, problem.y, problem.noise, denoising)


def problem_defaults(
    spec: str | Prior, problem: Problem, registry: Registry[Any] = priors
) -> str | Prior:
    """``spec`` with the options its entry derives from ``problem`` where the spec leaves them out.

    A registry entry (a prior, a solver) may carry ``metadata["problem_defaults"]``, a
    function of the problem's :class:`~deq_explorer.scale.Scale` that returns option
    values (TV: its weight, :func:`~deq_explorer.priors.classical.tv_problem_defaults`;
    a learned prior: its noise input; MCNet: its ε). Options the spec gives are kept; a
    :class:`Prior` object, a checkpoint path or an ``auto`` option is returned as it is.
    """
    if not isinstance(spec, str):
        return spec
    try:
        name, given = parse_spec(spec)
    except SpecError:
        return spec  # the build reports it
    if name not in registry:
        return spec
    rule = registry.entry(name).metadata.get("problem_defaults")
    if rule is None:
        return spec
    derived = {k: v for k, v in rule(problem_scale(problem)).items() if k not in given}
    if not derived:
        return spec
    extra = ",".join(f"{k}={v:.6g}" for k, v in derived.items())
    return f"{spec},{extra}" if given else f"{name}:{extra}"


def _prepare(problem: Problem, request: Request) -> tuple[FixedPointMap, Accelerator, StopRule]:
    """The fixed-point map, accelerator and stop rule that solve ``problem`` as ``request`` says."""
    request = request.settled()
    device = problem.y.device
    prior = build_prior(problem_defaults(request.prior, problem), device=device)
    w = request.w
    if w is not None:
        w = _as_image(w, unit_range=False).to(device=device, dtype=problem.x_init().dtype)
    solver = problem_defaults(request.solver, problem, solvers)
    fp_map = solvers.build(solver, op=problem.op, prior=prior, y=problem.y, w=w)
    rule = StopRule(
        max_iter=int(request.max_iter), tol=float(request.tol), diverge_at=DIVERGE_AT,
        criterion=Criterion(request.stop_on), patience=STALL_PATIENCE,
    )  # fmt: skip
    return fp_map, accelerators.build(request.accel), rule


@dataclass(frozen=True)
class Cost:
    """What one solve of a problem will take, estimated before it starts.

    Attributes
    ----------
    seconds_per_iteration : float
        One prior evaluation timed on a small tile, scaled by the pixel count
        (the prior is over 90 % of an iteration; BENCHMARKS.md).
    bytes : int
        Memory the solve needs: the network's widest activations and the
        solver's and accelerator's full-size buffers.
    available : int or None
        Memory free on the problem's device now (None where unknown).
    """

    seconds_per_iteration: float
    bytes: int
    available: int | None

    @property
    def fits(self) -> bool:
        return self.available is None or self.bytes <= self.available


def _available_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def estimate_cost(problem: Problem, prior: str | Prior, memory: int = 5, tile: int = 64) -> Cost:
    """Estimate a solve's time per iteration and memory before running it.

    Parameters
    ----------
    problem : Problem
        The problem to solve.
    prior : str or Prior
        Its prior (built here once).
    memory : int
        Iterates an accelerator keeps (Anderson's ``m``).
    tile : int
        Side of the tile the prior is timed on.
    """
    option = auto_option(prior)
    if option is not None:  # the cost of one solve does not depend on the tuned value
        name, given = parse_spec(prior)
        prior = format_spec(name, {k: v for k, v in given.items() if k != option})
    prior_obj = build_prior(prior, device=problem.y.device)
    c, h, w = problem.op.x_shape
    x = torch.rand((1, c, tile, tile), generator=torch.Generator().manual_seed(0))
    x = x.to(device=problem.y.device, dtype=problem.x_init().dtype)
    with torch.no_grad():
        prior_obj.denoise(x)  # warm-up
        t0 = time.perf_counter()
        prior_obj.denoise(x)
        seconds = (time.perf_counter() - t0) * (h * w) / tile**2
    module = getattr(prior_obj, "module", None)
    widths = [m.out_channels for m in module.modules() if isinstance(m, torch.nn.Conv2d)] if (
        module is not None) else []  # fmt: skip
    per_pixel = 3 * max(widths, default=8 * c) + c * (2 * memory + 10)  # floats per pixel
    return Cost(seconds, int(per_pixel * h * w * x.element_size()),
                _available_memory(problem.y.device))  # fmt: skip


#: images above this many pixels get a time and memory estimate before a solve
LARGE_PIXELS = 1_000_000
#: :func:`check_cost` warns of a solve that may take longer than this
WARN_SECONDS = 60.0


def check_cost(problem: Problem, prior: str | Prior, max_iter: int) -> str:
    """Estimate a large solve first: a warning text for a long one, ``""`` otherwise.

    Images up to :data:`LARGE_PIXELS` are not estimated. Raises
    :class:`ProblemError` when the solve cannot fit in the device's free memory.
    """
    _, h, w = problem.op.x_shape
    if h * w <= LARGE_PIXELS:
        return ""
    cost = estimate_cost(problem, prior)
    gib = cost.bytes / 2**30
    name = prior if isinstance(prior, str) else prior.name
    if not cost.fits:
        raise ProblemError(
            f"a {h}x{w} solve with {name!r} needs about {gib:.1f} GiB but "
            f"{cost.available / 2**30:.1f} GiB are free; crop or downscale the image"
        )
    total = cost.seconds_per_iteration * max_iter
    if total <= WARN_SECONDS:
        return ""
    return (
        f"{h}x{w} pixels with {name!r}: about {cost.seconds_per_iteration:.1f} s per iteration, "
        f"up to {total / 60:.0f} min for {max_iter} iterations (about {gib:.1f} GiB)"
    )


# errors a caller may want to catch as "bad input": the package's own, and the ValueErrors
# numpy, PIL and torch raise on a bad file or array
INPUT_ERRORS = (DEQExplorerError, ValueError)
