"""One solver iteration over one prior evaluation, at 256² on CPU (issue 2; issue 6 row 2).

Run by hand (not a test), e.g.::

    python benchmarks/solver_overhead.py --size 256 --threads 2 --repeats 15
    python benchmarks/solver_overhead.py --depth 17 --width 64 --solvers pnp-pgm --repeats 7

For each operator × solver on a ``size²`` gray image with a DnCNN prior (default: the
``DEFAULT_CONFIGS["dncnn"]`` architecture, random weights: timing does not depend on them) it
measures, interleaved within every repeat so that load changes on a shared machine hit all four
alike:

* ``prior``: one denoiser evaluation ``D(x)``;
* ``T``: one evaluation of the solver map alone (prior + data step);
* ``loop``: one iteration of :func:`deq_explorer.fixedpoint.iterate` with ``tol=0`` and no
  reference (map, accelerator step, residual, divergence check, consistency, change map);
* ``loop+ref``: the same with a reference image (adds PSNR and SSIM).

Each ratio is formed per repeat (``T/prior`` etc.) and summarised by its median and
inter-quartile range. Everything runs under ``torch.no_grad`` as the loop does. With
``--breakdown`` it also times the loop's parts one by one. ``--clock cpu --threads 1`` times
the calling thread's CPU time instead of wall time (work, immune to descheduling). Prints markdown.

``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here (set it in the environment to override): on a
machine with more runnable threads than cores, OpenMP threads that spin while waiting turn every
parallel region into a scheduler time slice, and the timings then count operations, not work.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP

import argparse
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from deq_explorer.fixedpoint import StopRule, iterate
from deq_explorer.fixedpoint.core import relative_residual
from deq_explorer.metrics import batch_consistency, batch_psnr, batch_ssim
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.nets import DEFAULT_CONFIGS, DnCNN
from deq_explorer.registry import operators, solvers

OPERATORS = ["deblur", "sr:scale=2", "inpaint", "mri:rate=0.1"]
SOLVERS = ["pnp-pgm", "red-sd", "pnp-admm", "fb"]


def machine() -> str:
    """CPU model, thread count, torch version and load, for the report."""
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"load average {load}"
    )


CLOCK: Callable[[], float] = time.perf_counter


def set_clock(clock: str, threads: int) -> None:
    """``wall``: ``perf_counter``; ``cpu``: the calling thread's CPU time (needs ``threads == 1``).

    CPU time counts only the cycles this process's one thread ran, so it measures work and is
    immune to being descheduled on a loaded machine (cache sharing still perturbs it a little).
    """
    global CLOCK
    if clock == "cpu" and threads != 1:
        raise SystemExit("--clock cpu measures the calling thread only: use it with --threads 1")
    CLOCK = time.thread_time if clock == "cpu" else time.perf_counter
    torch.set_num_threads(threads)


def seconds(fn: Callable[[], object]) -> float:
    t0 = CLOCK()
    fn()
    return CLOCK() - t0


def median_iqr(values: list[float]) -> tuple[float, float]:
    """Median and inter-quartile range."""
    q = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q[2] - q[0]


def fmt(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    med, iqr = median_iqr([scale * v for v in values])
    return f"{med:.{digits}f} ± {iqr / 2:.{digits}f}"


def build_prior(depth: int, width: int, batch_norm: bool) -> DenoiserPrior:
    torch.manual_seed(0)
    net = DnCNN(channels=1, depth=depth, width=width, batch_norm=batch_norm).eval()
    return DenoiserPrior(net, sigma=0.05, name=f"dncnn {depth}x{width}")


def problem(spec: str, size: int, batch: int = 1):
    """Operator, measurement and reference for a smooth random ``(batch, 1, size, size)`` image."""
    g = torch.Generator().manual_seed(0)
    x_true = torch.rand(batch, 1, size // 8, size // 8, generator=g)
    x_true = torch.nn.functional.interpolate(x_true, size=(size, size), mode="bilinear")
    op = operators.build(spec, shape=(1, size, size), device="cpu")
    return op, op.A(x_true), x_true


def overhead(prior, spec: str, solver: str, size: int, repeats: int) -> dict[str, list[float]]:
    """Per-repeat times of prior, T, loop and loop+ref (seconds)."""
    op, y, x_true = problem(spec, size)
    fp = solvers.build(solver, op=op, prior=prior, y=y)
    rule = StopRule(max_iter=10**9, tol=0.0)
    plain = iterate(fp, rule=rule)
    with_ref = iterate(fp, rule=rule, reference=x_true)
    z = fp.z0
    x = fp.image(z)
    times: dict[str, list[float]] = {"prior": [], "T": [], "loop": [], "loop+ref": []}
    for r in range(repeats + 2):  # two warm-up rounds
        with torch.no_grad():
            t = {
                "prior": seconds(lambda: prior.denoise(x)),
                "T": seconds(lambda: fp.T(z)),
            }
        t["loop"] = seconds(lambda: next(plain))
        t["loop+ref"] = seconds(lambda: next(with_ref))
        if r >= 2:
            for key, value in t.items():
                times[key].append(value)
    return times


def breakdown(prior, spec: str, size: int, repeats: int) -> dict[str, list[float]]:
    """Per-repeat times of the loop's parts for pnp-pgm (seconds)."""
    op, y, x_true = problem(spec, size)
    fp = solvers.build("pnp-pgm", op=op, prior=prior, y=y)
    with torch.no_grad():
        z = fp.T(fp.z0)
        Tz = fp.T(z)
        parts: dict[str, Callable[[], object]] = {
            "prior": lambda: prior.denoise(z),
            "T": lambda: fp.T(z),
            "residual": lambda: relative_residual(z, Tz).amax().item(),
            "consistency": lambda: batch_consistency(op, Tz, y).mean().item(),
            "change": lambda: (Tz - z).abs(),
            "psnr": lambda: batch_psnr(Tz, x_true).mean().item(),
            "ssim": lambda: batch_ssim(Tz, x_true).mean().item(),
        }
        times: dict[str, list[float]] = {key: [] for key in parts}
        for r in range(repeats + 2):
            for key, fn in parts.items():
                t = seconds(fn)
                if r >= 2:
                    times[key].append(t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = DEFAULT_CONFIGS["dncnn"]
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--depth", type=int, default=default["depth"])
    parser.add_argument("--width", type=int, default=default["width"])
    parser.add_argument("--batch-norm", action="store_true", default=default["batch_norm"])
    parser.add_argument("--operators", nargs="+", default=OPERATORS)
    parser.add_argument("--solvers", nargs="+", default=SOLVERS)
    parser.add_argument("--breakdown", action="store_true", help="also time the loop's parts")
    args = parser.parse_args()
    set_clock(args.clock, args.threads)
    prior = build_prior(args.depth, args.width, args.batch_norm)

    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}; clock: {args.clock}")
    print(f"prior: {prior.name} (batch norm {args.batch_norm}), image 1×1×{args.size}²")
    print(f"repeats: {args.repeats} (median ± half the inter-quartile range)\n")
    print("| operator | solver | prior ms | T / prior | loop / prior | loop+ref / prior |")
    print("|---|---|---|---|---|---|")
    for spec in args.operators:
        for name in args.solvers:
            t = overhead(prior, spec, name, args.size, args.repeats)
            ratios = {
                key: [a / b for a, b in zip(t[key], t["prior"], strict=True)]
                for key in ("T", "loop", "loop+ref")
            }
            print(
                f"| {spec} | {name} | {fmt(t['prior'], 1e3, 1)} | {fmt(ratios['T'])} "
                f"| {fmt(ratios['loop'])} | {fmt(ratios['loop+ref'])} |",
                flush=True,
            )
    if args.breakdown:
        keys = ["prior", "T", "residual", "consistency", "change", "psnr", "ssim"]
        print("\npnp-pgm, milliseconds per call (median ± half IQR)\n")
        print("| operator | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for spec in args.operators:
            t = breakdown(prior, spec, args.size, args.repeats)
            cells = " | ".join(fmt(t[key], 1e3, 2) for key in keys)
            print(f"| {spec} | {cells} |", flush=True)
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
