"""DEQ Explorer against deepinv on the same problems with the same DnCNN weights.

Run by hand in the benchmark environment (``bash benchmarks/env.sh``)::

    /work/benchenv/bin/python benchmarks/vs_deepinv.py [--sizes 128 256] [--iters 20]
        [--repeats 7] [--threads 2] [--device cpu] [--tol-size 128] [--out results.json]

What is compared (issue 6, rows 1–3):

1. time per iteration of PnP-PGM and PnP-ADMM on SR ×2, Gaussian deblurring and MRI 10 %,
   ours against deepinv's equivalent algorithm: ``PGD(g_first=True)`` with the ``RED`` prior
   (``x ← prox_{γf}(x − γλ(x − D(x)))``, exactly our ``pnp-pgm`` with ``tau = λ``) and ``ADMM``
   with the ``PnP`` prior (exactly our ``pnp-admm``). Ours is timed twice: the bare map
   ``z ← T(z)`` and the product loop ``solve()`` (which also measures the residual and the data
   consistency every iteration); deepinv runs ``model(y, physics)`` with ``early_stop=False``
   and no metrics. Same initial image, same number of iterations.
2. our iteration time divided by one prior evaluation ``D(x)``.
3. iterations and seconds to a relative residual of 1e-4 for PnP-PGM: ours plain, Nesterov and
   Anderson (m=5) against deepinv's PGD plain, FISTA-style momentum is not available for a RED
   gradient step, and deepinv's Anderson acceleration (its defaults and ours' settings).

The DnCNN (depth 8, width 32, no batch norm) is trained here for a few hundred steps of AWGN
denoising (σ = 0.05) on patches of scikit-image samples, so both libraries iterate a real
denoiser; the weights are copied into deepinv's DnCNN (``deq_explorer_deepinv.convert``) and the
outputs checked equal. Times are medians over ``--repeats`` runs with the inter-quartile range.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from deepinv.optim import ADMM, PGD
from deepinv.optim.data_fidelity import L2
from deepinv.optim.optimizers import AndersonAccelerationConfig
from deepinv.optim.prior import RED, PnP
from deepinv.physics import MRI, BlurFFT, Downsampling
from deq_explorer_deepinv.convert import dncnn_to_deepinv
from skimage import data
from skimage.transform import resize
from torch import nn

from deq_explorer.fixedpoint import StopRule, solve
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.nets import DnCNN
from deq_explorer.registry import accelerators, operators, solvers

warnings.filterwarnings("ignore")
SIGMA = 0.05
PROBLEMS = {
    "sr×2": "sr:scale=2,sigma=1.0",
    "deblur": "deblur:sigma=1.6",
    "mri 10%": "mri:rate=0.1",
}
ALGOS = {"pnp-pgm": "pnp-pgm:gamma=1.0,tau=0.5", "pnp-admm": "pnp-admm:gamma=1.0"}


# -- the shared denoiser --------------------------------------------------------------


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
        noisy = clean + SIGMA * torch.randn(clean.shape, generator=g)
        loss = (net(noisy) - clean).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net.to(device).eval()


class RealChannel(nn.Module):
    """deepinv's MRI images are (real, imaginary) channels: denoise the real one, zero the other."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        re = self.net(x[:, :1], sigma)
        return torch.cat([re, torch.zeros_like(re)], dim=1)


# -- the same problem in both libraries -------------------------------------------------


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


def agreement(name: str, op, phys, x: torch.Tensor) -> float:
    """‖A_ours x − A_deepinv x‖ / ‖A_ours x‖ (MRI: compared as |k-space| magnitudes)."""
    ours = op.A(x)
    if name == "mri 10%":
        y = phys.A(torch.cat([x, torch.zeros_like(x)], 1))
        theirs = torch.fft.ifftshift(torch.complex(y[:, 0], y[:, 1]), dim=(-2, -1))[:, None]
        ours, theirs = ours.abs(), theirs.abs()
    else:
        theirs = phys.A(x)
    return float((ours - theirs).norm() / ours.norm())


def test_image(size: int, device: torch.device) -> torch.Tensor:
    im = resize(data.camera().astype(np.float64) / 255.0, (size, size), anti_aliasing=True)
    return torch.from_numpy(im).float()[None, None].to(device)


# -- timing -------------------------------------------------------------------------


#: the clock: wall time, or the CPU time of this process (all its threads), which other
#: processes' load disturbs far less on a shared machine
CLOCK = {"now": time.perf_counter}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: torch.device) -> list[float]:
    fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = CLOCK["now"]()
        fn()
        sync(device)
        out.append(CLOCK["now"]() - t0)
    return out


def timed_interleaved(fns: dict, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Time each of ``fns`` ``repeats`` times, in rotation, so that load changes hit all alike."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    sync(device)
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = CLOCK["now"]()
            fn()
            sync(device)
            out[k].append(CLOCK["now"]() - t0)
    return out


def med_iqr(ts: list[float]) -> tuple[float, float]:
    if len(ts) < 2:
        return ts[0], 0.0
    q = statistics.quantiles(ts, n=4)
    return statistics.median(ts), q[2] - q[0]


def settled(psnrs: list[float], within: float = 0.05) -> int:
    """First iteration (1-based) from which every PSNR stays within ``within`` dB of the last."""
    last = psnrs[-1]
    k = len(psnrs)
    while k > 1 and abs(psnrs[k - 2] - last) <= within:
        k -= 1
    return k


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
            g_param=SIGMA,
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
        g_param=SIGMA,
        max_iter=iters,
        early_stop=early,
        thres_conv=tol,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tol-size", type=int, default=128)
    parser.add_argument("--tol-max-iter", type=int, default=300)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--weights", default="/tmp/vs_deepinv_dncnn8x32.pt")
    parser.add_argument("--out", default="")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        CLOCK["now"] = time.process_time
    device = torch.device(args.device)
    net = train_dncnn(Path(args.weights), args.train_steps, device)
    twin = dncnn_to_deepinv(net)
    probe = torch.rand(1, 1, 64, 64, device=device)
    with torch.no_grad():
        same = float((net(probe) - twin(probe)).abs().max())
    prior = DenoiserPrior(net, sigma=SIGMA, name="dncnn")
    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    print(
        f"machine: {cpu} {gpu}, {os.cpu_count()} cores, load {load[0]:.1f}/{load[1]:.1f}/"
        f"{load[2]:.1f}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {device}, {args.clock} clock; DnCNN 8×32, max |ours − deepinv| = {same:.1e}\n",
        flush=True,
    )
    results: dict = {"machine": cpu + (" " + gpu if gpu else ""), "load": load, "rows": []}

    # rows 1 and 2 ------------------------------------------------------------------
    print(
        "| problem | size | algorithm | ours map ms (IQR) | ours solve() ms (IQR) "
        "| deepinv ms (IQR) | map / deepinv | solve / deepinv | prior ms | map / prior "
        "| solve / prior | ‖ΔA‖/‖A‖ |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        x_true = test_image(size, device)
        with torch.no_grad():
            t_prior = med_iqr(timed(lambda x=x_true: prior.denoise(x), args.repeats * 3, device))
        for pname, spec in PROBLEMS.items():
            op = operators.build(spec, shape=(1, size, size), device=device)
            y = op.measure(x_true, 0.01, torch.Generator().manual_seed(1)).to(device)
            phys = deepinv_physics(pname, op, size, device)
            gap = agreement(pname, op, phys, x_true)
            x0 = op.init(y)
            if pname == "mri 10%":
                y_d = phys.A(torch.cat([x_true, torch.zeros_like(x_true)], 1))
                y_d = y_d + 0.01 * phys.mask * torch.randn(
                    y_d.shape, generator=torch.Generator().manual_seed(1)
                ).to(device)
                x0_d = torch.cat([x0, torch.zeros_like(x0)], 1)
                den = RealChannel(twin)
            else:
                y_d, x0_d, den = y, x0, twin
            for aname, aspec in ALGOS.items():
                fp = solvers.build(aspec, op=op, prior=prior, y=y, w=x0)

                def bare(fp=fp) -> None:
                    with torch.no_grad():
                        z = fp.z0
                        for _ in range(args.iters):
                            z = fp.T(z)

                def loop(fp=fp) -> None:
                    solve(fp, rule=StopRule(max_iter=args.iters, tol=0.0))

                model = deepinv_model(aname, den, args.iters, False, 0.0)

                init = x0_d if aname == "pnp-pgm" else (x0_d, torch.zeros_like(x0_d))

                def theirs(model=model, y_d=y_d, phys=phys, init=init) -> None:
                    with torch.no_grad():
                        model(y_d, phys, init=init)

                times = timed_interleaved(
                    {"map": bare, "solve": loop, "deepinv": theirs}, args.repeats, device
                )
                per = {}
                for key, ts in times.items():
                    m, s = med_iqr(ts)
                    per[key] = (m / args.iters, s / args.iters)
                ms = {k: (1e3 * v[0], 1e3 * v[1]) for k, v in per.items()}
                row = {
                    "problem": pname,
                    "size": size,
                    "algorithm": aname,
                    "ms": ms,
                    "prior_ms": 1e3 * t_prior[0],
                    "agreement": gap,
                }
                results["rows"].append(row)
                print(
                    f"| {pname} | {size}² | {aname} | {ms['map'][0]:.1f} ({ms['map'][1]:.1f}) "
                    f"| {ms['solve'][0]:.1f} ({ms['solve'][1]:.1f}) "
                    f"| {ms['deepinv'][0]:.1f} ({ms['deepinv'][1]:.1f}) "
                    f"| {ms['map'][0] / ms['deepinv'][0]:.2f} "
                    f"| {ms['solve'][0] / ms['deepinv'][0]:.2f} | {1e3 * t_prior[0]:.1f} "
                    f"| {per['map'][0] / t_prior[0]:.2f} | {per['solve'][0] / t_prior[0]:.2f} "
                    f"| {gap:.1e} |",
                    flush=True,
                )

    # row 3 -------------------------------------------------------------------------
    size = args.tol_size
    x_true = test_image(size, device)
    print(
        f"\nTime to relative residual 1e-4, PnP-PGM, {size}², at most {args.tol_max_iter} its\n",
        flush=True,
    )
    print(
        "| problem | method | iterations | seconds (IQR) | true residual at the end "
        "| iterations to ±0.05 dB of final PSNR | ≈ seconds to ±0.05 dB |"
    )
    print("|---|---|---|---|---|---|---|")
    results["tolerance"] = []
    reps = max(3, args.repeats // 2)
    for pname, spec in PROBLEMS.items():
        op = operators.build(spec, shape=(1, size, size), device=device)
        y = op.measure(x_true, 0.01, torch.Generator().manual_seed(1)).to(device)
        phys = deepinv_physics(pname, op, size, device)
        x0 = op.init(y)
        if pname == "mri 10%":
            y_d = phys.A(torch.cat([x_true, torch.zeros_like(x_true)], 1))
            x0_d = torch.cat([x0, torch.zeros_like(x0)], 1)
            den = RealChannel(twin)
        else:
            y_d, x0_d, den = y, x0, twin
        rule = StopRule(max_iter=args.tol_max_iter, tol=1e-4)
        for label, acc in (
            ("ours plain", "none"),
            ("ours nesterov", "nesterov"),
            ("ours anderson m=5", "anderson:m=5"),
        ):
            fp = solvers.build(ALGOS["pnp-pgm"], op=op, prior=prior, y=y, w=x0)
            accel = accelerators.build(acc)
            holder: dict = {}

            def run(fp=fp, accel=accel, holder=holder, rule=rule) -> None:
                holder["sol"] = solve(fp, accel, rule)

            m, s = med_iqr(timed(run, reps, device))
            sol = holder["sol"]
            # PSNR per iteration from an untimed run (metrics would slow the timed one)
            psnrs = solve(fp, accelerators.build(acc), rule, reference=x_true).history["psnr"]
            k05 = settled(psnrs)
            out = (pname, label, sol.iterations, m, s, sol.history["residual"][-1], k05)
            results["tolerance"].append(out)
            print(
                f"| {pname} | {label} | {sol.iterations} | {m:.2f} ({s:.2f}) | {out[5]:.1e} "
                f"| {k05} | {m * k05 / sol.iterations:.2f} |",
                flush=True,
            )
        for label, anderson in (
            ("deepinv PGD plain", None),
            ("deepinv PGD anderson (defaults m=10, β=0.9, eps=0.1)", AndersonAccelerationConfig()),
            (
                "deepinv PGD anderson (m=5, β=1, eps=1e-4)",
                AndersonAccelerationConfig(history_size=5, beta=1.0, eps=1e-4),
            ),
        ):
            model = deepinv_model("pnp-pgm", den, args.tol_max_iter, True, 1e-4, anderson)

            def run_d(model=model, y_d=y_d, phys=phys, x0_d=x0_d) -> None:
                with torch.no_grad():
                    model(y_d, phys, init=x0_d)

            m, s = med_iqr(timed(run_d, reps, device))
            x_gt = torch.cat([x_true, torch.zeros_like(x_true)], 1) if den is not twin else x_true
            with torch.no_grad():  # count the iterations once, outside the timing
                x_d, metrics = model(y_d, phys, init=x0_d, x_gt=x_gt, compute_metrics=True)
                # the true fixed-point residual: one plain deepinv PGD step from its output
                step = deepinv_model("pnp-pgm", den, 1, False, 0.0)
                x_next = step(y_d, phys, init=x_d)
                true = float((x_next - x_d).norm() / x_d.norm())
            its = len(metrics["residual"][0])
            k05 = settled([float(v) for v in metrics["psnr"][0]][-its:])  # no init entry
            out = (pname, label, its, m, s, true, k05)
            results["tolerance"].append(out)
            print(
                f"| {pname} | {label} | {its} | {m:.2f} ({s:.2f}) | {out[5]:.1e} | {k05} "
                f"| {m * k05 / its:.2f} |",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
