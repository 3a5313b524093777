"""The default TV weight against the best of a grid (issue 14): run by hand, prints markdown.

    python benchmarks/tv_weight.py                      # 5 operators × 4 noise levels × 3 photos
    python benchmarks/tv_weight.py --images camera --size 96

For each problem (PnP-PGM, Anderson, 100 iterations, seed 0) it solves with every weight of
the grid, with the weight a spec-less ``tv`` gets from its problem
(:func:`deq_explorer.priors.classical.tv_problem_defaults`) and with the old fixed 0.05, and
prints one row: start PSNR, best grid weight and PSNR, the rule's weight and PSNR, its gap to
the best, and the old default's PSNR. The summary line counts the problems where the rule is
within 1 dB of the best and above the start.
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import torch

from deq_explorer import api, metrics
from deq_explorer.images import center_crop, load_sample, to_gray

OPERATORS = ("denoise", "deblur:sigma=1.6", "sr:scale=2", "inpaint:p=0.5", "mri:rate=0.3")
NOISE = (0.0, 0.01, 0.03, 0.05)
GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


def psnr_with(problem: api.Problem, prior: str) -> float:
    solution = api.reconstruct(problem, prior=prior, accel="anderson", max_iter=100)
    return float(solution.history["psnr"][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="*", default=["camera", "astronaut", "grace_hopper"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = {n: center_crop(to_gray(load_sample(n)), args.size) for n in args.images}
    print("| problem | start | best grid w | best | rule w | rule | gap | fixed 0.05 |")
    print("|---|---|---|---|---|---|---|---|")
    gaps, above = [], []
    for op, sigma, name in itertools.product(OPERATORS, NOISE, images):
        if op == "denoise" and sigma == 0:
            continue
        problem = api.simulate(images[name], op, noise=sigma, seed=0)
        start = metrics.psnr(problem.x_init(), problem.x_true)
        grid = {w: psnr_with(problem, f"tv:weight={w}") for w in GRID}
        best_w = max(grid, key=grid.get)
        spec = api.problem_defaults("tv", problem)
        rule = psnr_with(problem, "tv")
        gaps.append(grid[best_w] - rule)
        above.append(rule > start)
        print(f"| {op}, σ {sigma}, {name} | {start:.2f} | {best_w} | {grid[best_w]:.2f} | "
              f"{spec.partition('=')[2]} | {rule:.2f} | {gaps[-1]:+.2f} | {grid[0.05]:.2f} |",
              flush=True)  # fmt: skip
    within = sum(g <= 1.0 for g in gaps)
    print(f"\nrule within 1 dB of the grid's best: {within}/{len(gaps)}; mean gap "
          f"{statistics.mean(gaps):.2f} dB, largest {max(gaps):.2f} dB; above the start: "
          f"{sum(above)}/{len(above)}")  # fmt: skip


if __name__ == "__main__":
    main()
