"""DEQ Explorer against deepinv 0.5.0: the same DnCNN module object, the same problems, one stop.

Run by hand in the benchmark environment (``bash benchmarks/env.sh``)::

    PYTHONPATH=.:plugins/deq-explorer-deepinv /work/benchenv/bin/python benchmarks/vs_deepinv.py \\
        [--sizes 128 256] [--threads 1 2] [--iters 10] [--repeats 5] [--tol-size 128] \\
        [--budget 300] [--clock cpu|wall] [--skip-speed] [--skip-tol] [--out results.json]

What is shared, and checked (printed first, for every size):

* **The network.** ``api.build_prior("dncnn-awgn:sigma=…")`` at the spec a solve of the problem
  would use (``api.problem_defaults``: the noise input derived from the problem's noise, never
  below the 0.03 the map was checked to contract at; for noise 0.01 here 0.03 on SR and deblur,
  0.0309 on MRI 10 %; it was 0.013 before that floor). deepinv gets that prior through the
  pack's ``DEQDenoiser`` (``deq_explorer_deepinv.export``), whose ``forward(x, σ)`` is
  ``prior.denoise(x, σ)``: the *same module object* (checked by identity) in the same
  channels-last layout, at the same σ (deepinv's ``g_param``). Neither library gets a faster copy of
  the weights.
* **The operators.** deepinv's own physics with our kernel and mask: ``Downsampling`` (our grid
  kernel cropped to 13×13, circular) for ``sr:scale=2,sigma=1.0``, ``BlurFFT`` (25×25) for
  ``deblur:sigma=1.6``, ``MRI`` (our mask, fftshifted) for ``mri:rate=0.1``. Printed: max |ΔA|
  and max |ΔAᵀ| on random inputs (for MRI in deepinv's layout, through the pack's
  ``DEQPhysics`` conversion).
* **The map.** Our ``pnp-pgm`` at its shipped defaults (γ, τ read from the registry: 1, 0.5)
  is deepinv's ``PGD(g_first=True)`` with the ``RED`` prior, ``stepsize = γ``,
  ``lambda_reg = τ``: ``x ← prox_{γf}(x − γτ(x − D(x)))``. Printed: max |Δx| and both PSNRs
  after 30 plain iterations from the same start (``op.init(y)``).
* **MRI.** deepinv's native ``MRI`` iterates a *complex* image (two channels; the denoiser is
  applied to the real one, the imaginary one is set to 0 by it): its real part follows our
  iteration exactly (the mask is point-symmetric) but its state, residual and Anderson
  history also carry an imaginary part, so it is a different fixed-point problem. The
  per-iteration table times it ("deepinv" row) and also deepinv's loop on our real-image MRI
  operator (``DEQPhysics``, "deepinv, our op" row); the time-to-1e-4 table uses the latter, so
  that both libraries iterate the same map on the same state.

Per iteration (``--threads`` each, ``--sizes`` each): ``--repeats`` rotations (order reversed
every other one) of ``--iters`` plain iterations: ours as the bare map ``z ← T(z)``, the core
loop ``fixed_point`` (what a solve runs: map, accelerator step, residual, divergence check) and
the monitoring loop ``solve()``; deepinv's ``model(y, physics, init=x0)`` with
``early_stop=False``, no metrics; one DnCNN evaluation ``D(x)``. Ratios are formed within each
rotation; median and IQR over rotations. The network's FLOPs (Σ over its Conv2d of
``2·C_in·C_out·k²·H·W``, counted with forward hooks; ReLUs and biases not counted) divided by
the time of ``D(x)`` is its achieved GFLOP/s, printed against the machine's measured FP32 peak:
the best of 7 single-precision 1024³ matrix products at the same thread count (the FMA units'
practical ceiling; Zen 3 has 2 FMA units × 8 FP32 lanes, 32 FLOP per cycle and core).

Time to 1e-4 (``--tol-size``, first ``--threads``): one stopping rule for both libraries, the
*true* relative fixed-point residual ``r_k = ‖T(z_k) − z_k‖/‖z_k‖`` of the point the map was
just evaluated at, measured inside both loops at the same cost (both compute ``T(z_k)``
anyway; the residual is two norms and one host sync): ours is the core's own rule
(``steps`` with ``StopRule(tol=1e-4)``, no stall rule); deepinv's iterator is wrapped to
measure the same norms and its ``check_conv_fn`` replaced by the test ``r_k < 1e-4``.
(deepinv's own ``crit_conv="residual"`` is ``‖x_{k+1} − x_k‖/(‖x_{k+1}‖ + 1e-6)`` between
consecutive *outputs* of its loop: the true residual for plain PGD, but with Anderson the
change between extrapolated iterates; one row shows where its own rule stops the best run.)
Each run goes until ``r_k < 1e-4`` or ``--budget`` iterations and records ``r_k``; the table
gives the iterations to each rung of a ladder (1e-3, 5e-4, 2e-4, 1e-4), so that runs which do
not reach 1e-4 in the budget are still compared. Time to a rung = its iterations × that run's
CPU time per iteration (the run is timed whole, the residual check included in both); the
per-iteration costs themselves are compared in the first table, under rotation. Rows: ours
``none``, ``anderson``, ``nesterov`` at their shipped defaults; deepinv plain PGD, its Anderson
at its defaults (m=10, β=0.9, eps=0.1) and tuned by a coordinate search: eps at m=5, β=1,
then the history size, then β (deepinv's eps is *absolute*, added to the Gram matrix ``GGᵀ``
of the unscaled residuals, whose entries are ``‖g‖² ≈ r²‖z‖²``, about 3e-5 at r = 1e-4 on a
128² image; ours is relative to the largest ``‖g‖²``). "Best" = fewest iterations to the
tightest rung reached. A tuning run is cut once it has used more iterations than the best
deepinv run that reached 1e-4 (it can no longer win).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP

import numpy as np
import torch
from deepinv.optim import ADMM, PGD
from deepinv.optim.data_fidelity import L2
from deepinv.optim.optimizers import AndersonAccelerationConfig
from deepinv.optim.prior import RED, PnP
from deepinv.physics import MRI, BlurFFT, Downsampling
from deq_explorer_deepinv.export import DEQDenoiser, DEQPhysics
from skimage import data
from skimage.transform import resize
from torch import Tensor, nn

from deq_explorer import api
from deq_explorer.fixedpoint import StopRule, fixed_point, solve, steps
from deq_explorer.fixedpoint.core import relative_residual
from deq_explorer.images import center_crop, load_sample
from deq_explorer.metrics import psnr
from deq_explorer.priors.nets import DnCNN
from deq_explorer.registry import accelerators, solvers

warnings.filterwarnings("ignore")
PRIOR = "dncnn-awgn"
SOLVER = "pnp-pgm"
NOISE = 0.01
#: label: (operator spec, sample image, radius of the small filter deepinv gets)
PROBLEMS = {
    "SR ×2": ("sr:scale=2,sigma=1.0", "camera", 6),
    "deblur": ("deblur:sigma=1.6", "camera", 12),
    "MRI 10 %": ("mri:rate=0.1", "brain", 0),
}
OURS = ("none", "anderson", "nesterov")
#: deepinv's Anderson (history_size, beta, eps) at its defaults, and the tuning: eps at m=5,
#: β=1, then the history size at the best eps, then β at the best pair (coordinate search)
DINV_DEFAULT = (10, 0.9, 0.1)
TUNE_EPS = (1e-4, 1e-6, 1e-8)
TUNE_M = (10,)
TUNE_BETA = (0.9,)
#: the residuals at which each run's iteration count is read off (the last one is the target)
LADDER = (1e-3, 5e-4, 2e-4, 1e-4)


# -- clocks and statistics ------------------------------------------------------------


def clocks() -> tuple[float, float]:
    """(wall, CPU time of this process: all its threads)."""
    return time.perf_counter(), time.process_time()


def med_iqr(v: list[float]) -> tuple[float, float]:
    if len(v) < 2:
        return v[0], 0.0
    q = statistics.quantiles(v, n=4, method="inclusive")
    return statistics.median(v), q[2] - q[0]


def rotation(
    fns: dict[str, Callable[[], object]], repeats: int, warm_up: bool = True
) -> dict[str, dict[str, list]]:
    """Time each function ``repeats`` times in rotation (order reversed every other round)."""
    out = {k: {"wall": [], "cpu": []} for k in fns}
    for fn in fns.values() if warm_up else ():
        fn()
    names = list(fns)
    for r in range(repeats):
        for k in names if r % 2 == 0 else names[::-1]:
            w0, c0 = clocks()
            fns[k]()
            w1, c1 = clocks()
            out[k]["wall"].append(w1 - w0)
            out[k]["cpu"].append(c1 - c0)
    return out


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f}/{b:.2f}/{c:.2f}"


# -- FLOPs and peak ---------------------------------------------------------------------


def conv_flops(net: nn.Module, x: Tensor, sigma: float) -> int:
    """Σ over Conv2d of 2·C_in/groups·C_out·kh·kw·H_out·W_out for one forward of ``x``."""
    total = [0]

    def hook(mod: nn.Conv2d, _inp, out: Tensor) -> None:
        kh, kw = mod.kernel_size
        cin = mod.in_channels // mod.groups
        total[0] += 2 * cin * mod.out_channels * kh * kw * out.shape[-2] * out.shape[-1]

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            net(x, sigma)
    finally:
        for h in handles:
            h.remove()
    return total[0] * x.shape[0]


def sgemm_peak(n: int = 1024, tries: int = 7) -> dict[str, float]:
    """Best FP32 GFLOP/s of an n×n×n matrix product at the current thread count, per clock.

    ``wall``: the machine's rate; ``cpu``: per CPU-second of this process (all its threads),
    i.e. per busy core, which is what the ``cpu`` clock compares the network against.
    """
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = {"wall": math.inf, "cpu": math.inf}
    for _ in range(tries):
        w0, c0 = clocks()
        torch.mm(a, b, out=c)
        w1, c1 = clocks()
        best["wall"] = min(best["wall"], w1 - w0)
        best["cpu"] = min(best["cpu"], c1 - c0)
    return {k: 2 * n**3 / max(v, 1e-9) / 1e9 for k, v in best.items()}


def nominal_peak() -> str:
    """32 FP32 FLOP/cycle (AVX2, 2 FMA units) at the TSC clock, where the kernel reports it."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
    if not mhz or " fma" not in text or " avx2" not in text:
        return "unknown"
    return f"{32 * mhz[0] / 1e3:.0f} GFLOP/s per core at {mhz[0]:.0f} MHz (no turbo counted)"


# -- one problem in both libraries ------------------------------------------------------


class RealChannel(nn.Module):
    """deepinv's complex (real, imaginary) MRI image: denoise the real channel, zero the other."""

    def __init__(self, den: nn.Module) -> None:
        super().__init__()
        self.den = den

    def forward(self, x: Tensor, sigma=None, **kwargs) -> Tensor:
        re = self.den(x[:, :1], sigma)
        return torch.cat([re, torch.zeros_like(re)], dim=1)


def small_filter(grid: Tensor, radius: int) -> Tensor:
    """A grid kernel (origin at [0, 0]) as a centred (2r+1)² filter ``(1, 1, k, k)``."""
    k = torch.roll(grid, shifts=(radius, radius), dims=(0, 1))[: 2 * radius + 1, : 2 * radius + 1]
    return (k / k.sum()).float()[None, None]


class Case:
    """One problem at one size, set up identically for both libraries."""

    def __init__(self, label: str, size: int) -> None:
        spec, sample, radius = PROBLEMS[label]
        self.label, self.size, self.spec = label, size, spec
        image = center_crop(load_sample(sample), size)
        self.problem = api.simulate(image, spec, noise=NOISE, seed=0, device="cpu")
        self.op, self.y, self.x_true = self.problem.op, self.problem.y, self.problem.x_true
        self.prior_spec = api.problem_defaults(PRIOR, self.problem)
        self.prior = api.build_prior(self.prior_spec, device="cpu")
        self.sigma = self.prior.sigma
        solver = api.problem_defaults(SOLVER, self.problem, solvers)
        self.solver = solver
        opts = solvers.options_of(solver)[1]
        self.gamma, self.tau = float(opts["gamma"]), float(opts["tau"])
        self.fp = solvers.build(solver, op=self.op, prior=self.prior, y=self.y)
        self.x0 = self.fp.z0
        self.den = DEQDenoiser(self.prior)
        assert self.den.net is self.prior.module  # the very same module object
        self.ours_phys = DEQPhysics(self.op)  # our operator as deepinv physics
        shape = (1, size, size)
        self.mri = spec.startswith("mri")
        if self.mri:
            mask = torch.fft.fftshift(self.op.mask.float())
            self.phys = MRI(mask=mask, img_size=(2, size, size))
            self.y_d = self.ours_phys._to_dinv(self.y)
            self.x0_d = torch.cat([self.x0, torch.zeros_like(self.x0)], 1)
            self.den_d: nn.Module = RealChannel(self.den)
        else:
            f = small_filter(self.op.kernel, radius)
            if spec.startswith("sr"):
                self.phys = Downsampling(img_size=shape, filter=f, factor=2, padding="circular")
            else:
                self.phys = BlurFFT(img_size=shape, filter=f)
            self.y_d, self.x0_d, self.den_d = self.y, self.x0, self.den

    def native(self, x: Tensor) -> Tensor:
        """Our real image in deepinv's native layout (MRI: a zero imaginary channel)."""
        return torch.cat([x, torch.zeros_like(x)], 1) if self.mri else x

    def deepinv(self, max_iter: int, anderson=None, native: bool = True, **kw) -> PGD:
        """deepinv's PGD(g_first=True, RED) = our pnp-pgm at γ, τ."""
        return PGD(
            data_fidelity=L2(),
            prior=RED(denoiser=self.den_d if native else self.den),
            stepsize=self.gamma,
            lambda_reg=self.tau,
            g_param=self.sigma,
            g_first=True,
            max_iter=max_iter,
            anderson_acceleration=anderson,
            **kw,
        )

    def args(self, native: bool = True) -> tuple[tuple, Tensor]:
        if native:
            return (self.y_d, self.phys), self.x0_d
        return (self.y_d, self.ours_phys), self.x0

    # -- the checks -------------------------------------------------------------------
    def checks(self, iters: int = 30) -> dict:
        g = torch.Generator().manual_seed(3)
        x = torch.rand((1, 1, self.size, self.size), generator=g)
        with torch.no_grad():
            a_ours = self.ours_phys.A(x)  # our A in deepinv's layout (identity off MRI)
            a_dinv = self.phys.A(self.native(x))
            yr = torch.randn(a_dinv.shape, generator=g)
            t_ours = self.ours_phys.A_adjoint(yr)
            t_dinv = self.phys.A_adjoint(yr)[:, :1]
            z = self.x0
            for _ in range(iters):
                z = self.fp.T(z)
            out = {"dA": float((a_ours - a_dinv).abs().max()),
                   "A_max": float(a_ours.abs().max()),
                   "dAt": float((t_ours - t_dinv).abs().max()),
                   "psnr_ours": psnr(z, self.x_true)}  # fmt: skip
            (y_d, phys), init = self.args(native=True)
            x_d = self.deepinv(iters, early_stop=False)(y_d, phys, init=init)
            out["dx"] = float((x_d[:, :1] - z).abs().max())
            out["psnr_dinv"] = psnr(x_d[:, :1], self.x_true)
            if self.mri:
                out["imag_max"] = float(x_d[:, 1:].abs().max())
                (y_d, phys), init = self.args(native=False)
                x_w = self.deepinv(iters, early_stop=False, native=False)(y_d, phys, init=init)
                out["dx_ourop"] = float((x_w - z).abs().max())
                out["psnr_dinv_ourop"] = psnr(x_w, self.x_true)
        return out


# -- deepinv with the true-residual stopping rule -------------------------------------


class TrueResidual(nn.Module):
    """deepinv's iterator, measuring ``‖T(x) − x‖/‖x‖`` at the point it maps (as our core)."""

    def __init__(self, inner: nn.Module, tol: float) -> None:
        super().__init__()
        self.inner = inner
        self.tol = tol
        self.history: list[float] = []
        self.r, self.peak = math.inf, 0.0

    @property
    def cost_fn(self):  # read by deepinv's Anderson step
        return self.inner.cost_fn

    def forward(self, X: dict, *args, **kwargs) -> dict:
        out = self.inner(X, *args, **kwargs)
        x, tx = X["est"][0].detach(), out["est"][0].detach()
        peak = torch.linalg.vector_norm(tx, ord=math.inf).double()
        self.r, self.peak = torch.stack([relative_residual(x, tx).amax(), peak]).tolist()
        self.history.append(self.r)
        return out

    def converged(self, it: int, X_prev: dict, X: dict) -> bool:
        return self.r < self.tol or not math.isfinite(self.r) or self.peak > 1e10


def summary(history: list[float], ok: bool, x: Tensor, case: Case, w: float, c: float) -> dict:
    """What one run did: iterations to each rung of ``LADDER``, last/min residual, PSNR, time."""
    first = {t: next((k + 1 for k, r in enumerate(history) if r < t), None) for t in LADDER}
    return {"iterations": len(history), "residual": history[-1] if history else math.inf,
            "min_residual": min(history, default=math.inf), "to": first,
            "reached": first[LADDER[-1]] is not None, "diverged": not ok,
            "psnr": psnr(x, case.x_true) if ok else float("nan"), "wall": w, "cpu": c,
            "ms_per_it": 1e3 * c / max(len(history), 1)}  # fmt: skip


def run_deepinv(case: Case, cfg, budget: int, tol: float, own_rule: bool = False) -> dict:
    """One deepinv PGD run from ``x0`` (``cfg``: None = plain, or (m, β, eps))."""
    anderson = None if cfg is None else AndersonAccelerationConfig(*cfg)
    native = not case.mri  # MRI: our real-image operator, the same state as ours
    if own_rule:
        model = case.deepinv(budget, anderson, native=native, early_stop=True, thres_conv=tol)
    else:
        model = case.deepinv(budget, anderson, native=native, early_stop=True)
    fpm = model.fixed_point
    wrap = TrueResidual(fpm.iterator, tol)
    fpm.iterator = wrap
    if not own_rule:
        fpm.check_conv_fn = wrap.converged
    (y_d, phys), init = case.args(native=native)
    w0, c0 = clocks()
    with torch.no_grad():
        x = model(y_d, phys, init=init)
    w1, c1 = clocks()
    ok = math.isfinite(wrap.r) and wrap.peak <= 1e10
    return summary(wrap.history, ok, x, case, w1 - w0, c1 - c0)


def run_ours(case: Case, accel: str, budget: int, tol: float) -> dict:
    fp = solvers.build(case.solver, op=case.op, prior=case.prior, y=case.y)
    rule = StopRule(max_iter=budget, tol=tol)
    history: list[float] = []
    w0, c0 = clocks()
    with torch.no_grad():
        for step in steps(fp.T, fp.z0, accelerators.build(accel), rule):
            history.append(step.residual)
    w1, c1 = clocks()
    ok = step.status.value != "diverged"
    return summary(history, ok, fp.image(step.z_next), case, w1 - w0, c1 - c0)


# -- the tables -------------------------------------------------------------------------


def print_checks(cases: list[Case]) -> list[dict]:
    print("| problem | size | prior spec | σ | max abs ΔA (max abs A) | max abs ΔAᵀ "
          "| max abs Δx after 30 | PSNR ours / deepinv after 30 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for c in cases:
        ch = c.checks()
        rows.append({"problem": c.label, "size": c.size, **ch})
        dx = f"{ch['dx']:.1e}"
        ps = f"{ch['psnr_ours']:.3f} / {ch['psnr_dinv']:.3f}"
        if c.mri:
            dx += f" (real part; our op: {ch['dx_ourop']:.1e}; imaginary part up to "
            dx += f"{ch['imag_max']:.1e})"
            ps += f" (our op: {ch['psnr_dinv_ourop']:.3f})"
        print(f"| {c.label} | {c.size}² | `{c.prior_spec}` | {c.sigma:g} "
              f"| {ch['dA']:.1e} ({ch['A_max']:.1f}) | {ch['dAt']:.1e} | {dx} | {ps} |",
              flush=True)  # fmt: skip
    return rows


def speed_table(cases: list[Case], iters: int, repeats: int, clock: str, peak: float) -> list:
    """One row per problem and size (two for MRI); ``peak`` in GFLOP/s on ``clock``."""
    print(
        "| problem | size | ours map | ours core | ours solve() | deepinv | core / deepinv "
        "| solve() / deepinv | D(x) | core / D | deepinv / D | net GFLOP/s | % of peak | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for c in cases:
        rule = StopRule(max_iter=iters, tol=0.0)
        flops = conv_flops(c.prior.module, c.x0.contiguous(memory_format=torch.channels_last),
                           c.sigma)  # fmt: skip

        def bare(c=c) -> None:
            z = c.x0
            for _ in range(iters):
                z = c.fp.T(z)

        def prior(c=c) -> None:
            for _ in range(iters):
                c.prior.denoise(c.x0)

        fns: dict[str, Callable[[], object]] = {
            "map": bare,
            "core": lambda c=c, rule=rule: fixed_point(c.fp.T, c.x0, rule=rule),
            "solve": lambda c=c, rule=rule: solve(c.fp, None, rule),
        }
        variants = [("deepinv", True)] + ([("deepinv, our op", False)] if c.mri else [])
        for name, native in variants:
            model = c.deepinv(iters, early_stop=False, native=native)
            (y_d, phys), init = c.args(native)
            fns[name] = lambda m=model, y_d=y_d, p=phys, i=init: m(y_d, p, init=i)
        fns["prior"] = prior
        with torch.no_grad():
            t = rotation(fns, repeats)
        per = {k: [s / iters for s in v[clock]] for k, v in t.items()}
        ms = {k: med_iqr([1e3 * s for s in v]) for k, v in per.items()}
        gf = med_iqr([flops / s / 1e9 for s in per["prior"]])
        for name, _ in variants:
            ratio = {k: med_iqr([a / b for a, b in zip(per[k], per[name], strict=True)])
                     for k in ("core", "solve")}  # fmt: skip
            core_d = med_iqr([a / b for a, b in zip(per["core"], per["prior"], strict=True)])
            dinv_d = med_iqr([a / b for a, b in zip(per[name], per["prior"], strict=True)])
            label = c.label if name == "deepinv" else f"{c.label} ({name})"
            rows.append({"problem": label, "size": c.size, "ms": ms, "ratio": ratio,
                         "core_per_D": core_d, "dinv_per_D": dinv_d, "gflops": gf,
                         "flops": flops, "peak": peak, "load": os.getloadavg()})  # fmt: skip
            f = lambda v, d=1: f"{v[0]:.{d}f} ({v[1]:.{d}f})"  # noqa: E731
            print(f"| {label} | {c.size}² | {f(ms['map'])} | {f(ms['core'])} | {f(ms['solve'])} "
                  f"| {f(ms[name])} | **{f(ratio['core'], 2)}** | {f(ratio['solve'], 2)} "
                  f"| {f(ms['prior'])} | {f(core_d, 3)} | {f(dinv_d, 3)} | {f(gf)} "
                  f"| {100 * gf[0] / peak:.0f} % | {load()} |", flush=True)  # fmt: skip
    return rows


def rungs(r: dict) -> str:
    return " | ".join(str(r["to"][t]) if r["to"][t] else "—" for t in LADDER)


def fmt_run(r: dict) -> str:
    if r.get("cut"):
        return f"{rungs(r)} | > {r['iterations']} (cut) | — | — | {r['min_residual']:.1e} | — |"
    its = str(r["iterations"]) if r["reached"] else f"{r['iterations']} ✗"
    if r["diverged"]:
        its = f"{r['iterations']} diverged"
    return (
        f"{rungs(r)} | {its} | {r['cpu']:.1f} / {r['wall']:.1f} | {r['ms_per_it']:.1f} "
        f"| {r['residual']:.1e} ({r['min_residual']:.1e}) | {r['psnr']:.3f} |"
    )


def rank(r: dict) -> tuple:
    """Fewer iterations to the tightest rung first, then to the looser ones, then residual."""
    return (*[r["to"][t] or math.inf for t in reversed(LADDER)], r["min_residual"])


def tolerance_table(case: Case, budget: int, tol: float) -> dict:
    print(
        f"\n#### {case.label}, {case.size}², `{case.prior_spec}`, `{case.solver}` "
        f"(γ={case.gamma:g}, τ={case.tau:g}), at most {budget} iterations; load {load()}\n"
    )
    heads = " | ".join(f"its to {t:g}" for t in LADDER)
    print(f"| library | accelerator | {heads} | iterations run | s CPU / wall | CPU ms / it "
          "| true residual at the end (smallest) | PSNR | Δ PSNR vs plain |")  # fmt: skip
    print("|---|---|" + "---|" * len(LADDER) + "---|---|---|---|---|---|")
    out: dict = {"ours": {}, "deepinv": {}}

    def show(lib: str, name: str, r: dict, plain: dict | None) -> None:
        dp = "—" if plain is None or r.get("cut") else f"{r['psnr'] - plain['psnr']:+.3f}"
        print(f"| {lib} | {name} | {fmt_run(r)} {dp} |", flush=True)

    for acc in OURS:
        r = run_ours(case, acc, budget, tol)
        out["ours"][acc] = r
        show("ours", f"`{acc}`", r, out["ours"].get("none") if acc != "none" else None)
    plain = run_deepinv(case, None, budget, tol)
    out["deepinv"]["plain"] = plain
    show("deepinv", "plain PGD", plain, None)
    best = [plain["iterations"] if plain["reached"] else budget]

    def anderson(cfg: tuple, default: bool = False) -> dict:
        name = f"Anderson m={cfg[0]}, β={cfg[1]:g}, eps={cfg[2]:g}"
        name += " (its defaults)" if default else ""
        if name in out["deepinv"]:
            return out["deepinv"][name]
        cap = budget if default else best[0]
        try:
            r = run_deepinv(case, cfg, cap, tol)
        except (RuntimeError, torch.linalg.LinAlgError) as exc:  # a singular Anderson system
            r = summary([math.inf], False, case.x0, case, 0.0, 0.0)
            r["error"] = str(exc)[:80]
        r["cut"] = not default and not r["reached"] and not r["diverged"] and cap < budget
        r["cfg"] = cfg
        out["deepinv"][name] = r
        if r["reached"]:
            best[0] = min(best[0], r["iterations"])
        show("deepinv", name, r, plain)
        return r

    anderson(DINV_DEFAULT, default=True)
    m, beta = 5, 1.0
    eps = min(TUNE_EPS, key=lambda e: rank(anderson((m, beta, e))))
    m = min((m, *TUNE_M), key=lambda k: rank(anderson((k, beta, eps))))
    beta = min((beta, *TUNE_BETA), key=lambda b: rank(anderson((m, b, eps))))
    out["deepinv_tuned"] = (m, beta, eps)
    ob = min(out["ours"], key=lambda k: rank(out["ours"][k]))
    db = min(out["deepinv"], key=lambda k: rank(out["deepinv"][k]))
    if db != "plain" and out["deepinv"][db]["reached"]:  # where deepinv's own rule stops it
        r = run_deepinv(case, out["deepinv"][db]["cfg"], budget, tol, own_rule=True)
        out["deepinv_own_rule"] = {"config": db, **r}
        print(f"| deepinv | {db}, **its own rule** (change < {tol:g}) | {fmt_run(r)} — |")
    out["best"] = {"ours": ob, "deepinv": db}
    o, d = out["ours"][ob], out["deepinv"][db]
    print(f"\nbest of each: ours `{ob}`, deepinv {db}. Time to each rung = its iterations × the "
          "run's CPU ms per iteration; ours / deepinv:")  # fmt: skip
    ratios = {}
    for t in LADDER:
        if o["to"][t] and d["to"][t]:
            ratios[t] = o["to"][t] * o["ms_per_it"] / (d["to"][t] * d["ms_per_it"])
            print(f"- {t:g}: {o['to'][t] * o['ms_per_it'] / 1e3:.2f} s / "
                  f"{d['to'][t] * d['ms_per_it'] / 1e3:.2f} s = **{ratios[t]:.2f}** "
                  f"(iterations {o['to'][t]} / {d['to'][t]})")  # fmt: skip
        else:
            print(f"- {t:g}: ours {o['to'][t] or 'not reached'}, deepinv "
                  f"{d['to'][t] or 'not reached'} (iterations)")  # fmt: skip
    out["ratios"] = ratios
    return out


# -- the helpers of the first version, still used by deq_peers.py (issue 6 row 4) ----------
#
# They train a small DnCNN here and copy it into deepinv's DnCNN (an NCHW twin), which is what
# made the first version's per-iteration figures a comparison of memory layouts; the tables
# above no longer use them.

LEGACY_SIGMA = 0.05


def train_dncnn(path: Path, steps: int, device: torch.device) -> DnCNN:
    """A DnCNN 8×32 trained briefly for AWGN σ = 0.05 (cached at ``path``)."""
    torch.manual_seed(0)
    net = DnCNN(channels=1, depth=8, width=32, batch_norm=False)
    if path.is_file():
        net.load_state_dict(torch.load(path, map_location="cpu"))
        return net.to(device).eval()
    images = [data.camera(), data.astronaut()[..., 1], data.coins(), data.moon(), data.text()]
    pool = [torch.from_numpy(im.astype(np.float32) / 255.0) for im in images]
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(steps):
        batch = []
        for _ in range(16):
            im = pool[int(torch.randint(len(pool), (1,), generator=g))]
            i = int(torch.randint(im.shape[0] - 48, (1,), generator=g))
            j = int(torch.randint(im.shape[1] - 48, (1,), generator=g))
            batch.append(im[i : i + 48, j : j + 48])
        clean = torch.stack(batch)[:, None]
        noisy = clean + LEGACY_SIGMA * torch.randn(clean.shape, generator=g)
        loss = (net(noisy) - clean).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net.to(device).eval()


def small_kernel(grid: torch.Tensor, radius: int) -> torch.Tensor:
    """The grid kernel (origin at [0, 0]) as a centred (2r+1)² filter, renormalised."""
    k = torch.roll(grid, shifts=(radius, radius), dims=(0, 1))[: 2 * radius + 1, : 2 * radius + 1]
    return (k / k.sum())[None, None]


def deepinv_physics(name: str, op, size: int, device: torch.device):
    """deepinv's physics for the core operator ``op`` (same kernel / same mask)."""
    shape = (1, size, size)
    if name == "sr×2":
        f = small_kernel(op.kernel, 6).float().to(device)
        return Downsampling(img_size=shape, filter=f, factor=2, padding="circular", device=device)
    if name == "deblur":
        f = small_kernel(op.kernel, 8).float().to(device)
        return BlurFFT(img_size=shape, filter=f, device=device)
    mask = torch.fft.fftshift(op.mask.float()).to(device)  # deepinv's k-space is centred
    return MRI(mask=mask, img_size=(2, size, size), device=device)


def test_image(size: int, device: torch.device) -> torch.Tensor:
    im = resize(data.camera().astype(np.float64) / 255.0, (size, size), anti_aliasing=True)
    return torch.from_numpy(im).float()[None, None].to(device)


def deepinv_model(
    algo: str,
    den: nn.Module,
    iters: int,
    early: bool,
    tol: float,
    anderson: AndersonAccelerationConfig | None = None,
) -> nn.Module:
    if algo == "pnp-pgm":
        return PGD(
            data_fidelity=L2(),
            prior=RED(denoiser=den),
            stepsize=1.0,
            lambda_reg=0.5,
            g_param=LEGACY_SIGMA,
            g_first=True,
            max_iter=iters,
            early_stop=early,
            thres_conv=tol,
            anderson_acceleration=anderson,
        )
    return ADMM(
        data_fidelity=L2(),
        prior=PnP(denoiser=den),
        stepsize=1.0,
        g_param=LEGACY_SIGMA,
        max_iter=iters,
        early_stop=early,
        thres_conv=tol,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tol-size", type=int, default=128)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-tol", action="store_true")
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip()
                     for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        model = cpu
    import deepinv

    print(f"machine: {model}, {os.cpu_count()} cores; torch {torch.__version__}, deepinv "
          f"{deepinv.__version__}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; "
          f"{args.clock} clock; load {load()}; nominal FP32 peak {nominal_peak()}\n")  # fmt: skip
    per = {"cpu": "CPU-second (per busy core)", "wall": "second (wall)"}
    results: dict = {"machine": model, "args": vars(args), "start_load": os.getloadavg()}

    torch.set_num_threads(args.threads[0])
    sizes = sorted(set(args.sizes) | ({args.tol_size} if not args.skip_tol else set()))
    cases = {(p, s): Case(p, s) for s in sizes for p in args.problems}
    print(
        "### Checks (same module object in both: "
        f"{all(c.den.net is c.prior.module for c in cases.values())})\n"
    )
    results["checks"] = print_checks(list(cases.values()))

    if not args.skip_speed:
        results["speed"] = {}
        for n in args.threads:
            torch.set_num_threads(n)
            peak = sgemm_peak()
            print(f"\n### Per iteration, {n} thread(s): ms ({args.clock} clock), median (IQR) of "
                  f"{args.repeats} rotations of {args.iters} iterations; measured FP32 peak "
                  f"(sgemm 1024³, best of 7) {peak[args.clock]:.1f} GFLOP/s per {per[args.clock]} "
                  f"({peak['wall']:.1f} wall); load {load()}\n")  # fmt: skip
            sel = [cases[(p, s)] for s in args.sizes for p in args.problems]
            rows = speed_table(sel, args.iters, args.repeats, args.clock, peak[args.clock])
            after = sgemm_peak()
            results["speed"][n] = {"peak": peak, "peak_after": after, "rows": rows}
            print(f"\nsgemm peak after the table: {after[args.clock]:.1f} GFLOP/s per "
                  f"{per[args.clock]}; load {load()}")  # fmt: skip

    if not args.skip_tol:
        torch.set_num_threads(args.threads[0])
        peak = sgemm_peak()
        c0 = cases[(args.problems[0], args.tol_size)]
        flops = conv_flops(c0.prior.module, c0.x0.contiguous(memory_format=torch.channels_last),
                           c0.sigma)  # fmt: skip
        with torch.no_grad():
            t = rotation({"D": lambda: c0.prior.denoise(c0.x0)}, 9)["D"][args.clock]
        gf = flops / statistics.median(t) / 1e9
        print(f"\n### Time to a true residual of {args.tol:g}, {args.tol_size}², "
              f"{args.threads[0]} thread(s); network {flops / 1e9:.2f} GFLOP per call, "
              f"{gf:.1f} GFLOP/s = {100 * gf / peak[args.clock]:.0f} % of the measured peak "
              f"{peak[args.clock]:.1f} GFLOP/s ({args.clock} clock); load {load()}")  # fmt: skip
        results["tol"] = {"peak": peak, "net_gflops": gf}
        for p in args.problems:
            results["tol"][p] = tolerance_table(cases[(p, args.tol_size)], args.budget, args.tol)
    results["end_load"] = os.getloadavg()
    print(f"\nload at the end {load()}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
