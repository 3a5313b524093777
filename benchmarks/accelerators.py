"""Accelerators at the shipped defaults: iterations to the stopping rule, residual, PSNR.

Run by hand (not a test)::

    python benchmarks/accelerators.py --size 128 --max-iter 300
    python benchmarks/accelerators.py --size 256 --max-iter 600 --prior dncnn-awgn

For SR ×2, deblur (σ 1.6) and 30 % radial MRI of a ``size²`` crop (camera; brain for
MRI) with 0.01 noise, PnP-PGM with the prior at its default σ, it runs plain iteration, the
default Anderson and Nesterov (safeguarded), and the unguarded rules of 0.1
(``anderson:lam=1e-4,safeguard=0``, ``nesterov:safeguard=0``), all with the same stopping rule
(relative fixed-point residual ``tol``). Prints one markdown row per run: status, iterations,
final and smallest residual, final PSNR and seconds. The criterion of issue 19:
no accelerator ends below plain iteration's PSNR or diverges where plain converges.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from deq_explorer import api
from deq_explorer.fixedpoint import StopRule, iterate
from deq_explorer.images import center_crop, load_sample
from deq_explorer.registry import accelerators, solvers

OPERATORS = ("sr:scale=2", "deblur:sigma=1.6", "mri:rate=0.3")
ACCELS = ("none", "anderson", "anderson:lam=1e-4,safeguard=0", "nesterov",
          "nesterov:safeguard=0")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--prior", default="dncnn-awgn")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), load {os.getloadavg()[0]:.1f}; prior {args.prior}, "
          f"pnp-pgm, {args.size}², tol {args.tol:g}, max {args.max_iter}\n")  # fmt: skip
    print("| operator | accel | status | iterations | residual | min residual | PSNR | s |")
    print("|---|---|---|---|---|---|---|---|")
    prior = api.build_prior(args.prior)
    for spec in OPERATORS:
        image = center_crop(load_sample("brain" if spec.startswith("mri") else "camera"), args.size)
        problem = api.simulate(image, spec, noise=0.01, seed=0)
        for accel in ACCELS:
            fp = solvers.build("pnp-pgm", op=problem.op, prior=prior, y=problem.y)
            acc = accelerators.build(accel)
            t0 = time.perf_counter()
            residuals, last = [], None
            for it in iterate(fp, acc, StopRule(max_iter=args.max_iter, tol=args.tol),
                              reference=problem.x_true):  # fmt: skip
                residuals.append(it.residual)
                last = it
            seconds = time.perf_counter() - t0
            print(f"| {spec} | `{accel}` | {last.status.value} | {last.k} | {residuals[-1]:.2e} | "
                  f"{min(residuals):.2e} | {last.psnr:.2f} | {seconds:.1f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
