"""Time of one solver iteration divided by the time of one prior evaluation.

Run by hand (not a test)::

    python benchmarks/solver_overhead.py [--size 256] [--repeats 30] [--arch-depth 8 --arch-width 32]

For each FFT/mask-based operator and each solver, the map ``T`` is built once and timed over
``--repeats`` calls after a warm-up, exactly as :func:`deq_explorer.fixedpoint.iterate` calls it
(no autograd); the prior evaluation ``D(x)`` is timed the same way. The ratio's target is
≤ 1.10 at 256² on CPU where the data step is closed form. Prints a markdown table (median and
inter-quartile spread over the repeats).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.nets import DnCNN
from deq_explorer.registry import operators, solvers

OPERATORS = ["denoise", "deblur:sigma=1.6", "sr:scale=2", "inpaint:p=0.5", "mri:rate=0.1"]
SOLVERS = ["pnp-pgm", "red-sd", "pnp-admm", "fb"]


def _times(fn, repeats: int) -> list[float]:
    for _ in range(3):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _summary(ts: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ts, n=4)
    return statistics.median(ts), q[2] - q[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--arch-depth", type=int, default=8)
    parser.add_argument("--arch-width", type=int, default=32)
    args = parser.parse_args()

    torch.manual_seed(0)
    net = DnCNN(channels=1, depth=args.arch_depth, width=args.arch_width).eval()
    prior = DenoiserPrior(net, sigma=0.05, name="dncnn")
    x_true = torch.rand(1, 1, args.size, args.size)

    with torch.no_grad():
        t_prior, s_prior = _summary(_times(lambda: prior.denoise(x_true), args.repeats))
        print(f"machine: {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}")
        print(f"prior: DnCNN depth {args.arch_depth} width {args.arch_width}, "
              f"{args.size}²: {1e3 * t_prior:.1f} ms (IQR {1e3 * s_prior:.1f})\n")
        print("| operator | solver | iteration ms (IQR) | ratio to prior |")
        print("|---|---|---|---|")
        for spec in OPERATORS:
            op = operators.build(spec, shape=(1, args.size, args.size), device="cpu")
            y = op.A(x_true)
            for name in SOLVERS:
                fp = solvers.build(name, op=op, prior=prior, y=y)
                z = fp.T(fp.z0)
                t_it, s_it = _summary(_times(lambda fp=fp, z=z: fp.T(z), args.repeats))
                print(f"| {spec} | {name} | {1e3 * t_it:.1f} ({1e3 * s_it:.1f}) "
                      f"| {t_it / t_prior:.3f} |")


if __name__ == "__main__":
    main()
