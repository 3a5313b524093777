"""Time per solver iteration against image size and batch size (issue 6 row 5).

Run by hand (not a test)::

    python benchmarks/scaling.py --threads 2 --repeats 5

PnP-PGM + Gaussian deblurring + DnCNN (``DEFAULT_CONFIGS["dncnn"]``, random weights), one
iteration of :func:`deq_explorer.fixedpoint.iterate` (``tol=0``, no reference) and one prior
evaluation, interleaved per repeat; sizes 64² … 1024² at batch 1, then batches 1, 2, 4, 8 at 256².
Prints per-iteration time, time per megapixel and its ratio to the 256² batch-1 value (1.00 =
linear in the number of pixels). ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` as in
``solver_overhead.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP

import argparse
import statistics
import sys

import torch
from solver_overhead import build_prior, fmt, machine, problem, seconds, set_clock

from deq_explorer.fixedpoint import StopRule, iterate
from deq_explorer.priors.nets import DEFAULT_CONFIGS
from deq_explorer.registry import solvers


def measure(prior, size: int, batch: int, repeats: int) -> tuple[list[float], list[float]]:
    """Per-repeat seconds of one loop iteration and of one prior evaluation."""
    op, y, _ = problem("deblur", size, batch)
    fp = solvers.build("pnp-pgm", op=op, prior=prior, y=y)
    loop = iterate(fp, rule=StopRule(max_iter=10**9, tol=0.0))
    x = fp.z0
    it, pr = [], []
    for r in range(repeats + 1):  # one warm-up round
        with torch.no_grad():
            t_prior = seconds(lambda: prior.denoise(x))
        t_it = seconds(lambda: next(loop))
        if r >= 1:
            it.append(t_it)
            pr.append(t_prior)
    return it, pr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = DEFAULT_CONFIGS["dncnn"]
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--batch-size-image", type=int, default=256)
    args = parser.parse_args()
    set_clock(args.clock, args.threads)
    prior = build_prior(default["depth"], default["width"], default["batch_norm"])

    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}; clock: {args.clock}")
    print(f"pnp-pgm + deblur + {prior.name}; repeats {args.repeats} (median ± half IQR)\n")
    cases = [(s, 1) for s in args.sizes] + [
        (args.batch_size_image, b) for b in args.batches if b != 1
    ]
    rows = {}
    for size, batch in cases:
        rows[size, batch] = measure(prior, size, batch, args.repeats)
    base_size = args.batch_size_image
    base = statistics.median(rows[base_size, 1][0]) / (base_size**2 * 1e-6)
    print(
        "| size | batch | iteration ms | prior ms | iteration / prior | ms/Mpx | per-px vs 256² |"
    )
    print("|---|---|---|---|---|---|---|")
    for (size, batch), (it, pr) in rows.items():
        mpx = batch * size**2 * 1e-6
        per = statistics.median(it) / mpx
        ratio = [a / b for a, b in zip(it, pr, strict=True)]
        print(
            f"| {size}² | {batch} | {fmt(it, 1e3, 1)} | {fmt(pr, 1e3, 1)} | {fmt(ratio)} "
            f"| {1e3 * per:.0f} | {per / base:.2f} |",
            flush=True,
        )
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
