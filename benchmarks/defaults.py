"""Defaults against the best of a grid, for every operator × prior (issue 14): run by hand.

    python benchmarks/defaults.py                          # the full table (≈ 1 h, 2 threads)
    python benchmarks/defaults.py --priors tv dncnn-awgn --size 64 --images camera
    python benchmarks/defaults.py --log runs.jsonl         # keep every cell; rerun resumes
    python benchmarks/defaults.py --log runs.jsonl --fresh-defaults   # after a rule changed

Each cell is one problem (operator, noise level, test image) and one prior solved with its
default solver (the prior's trained one, else PnP-PGM), accelerator and tolerance, and
``max_iter=100``. "defaults" is the spec-less prior and solver: the values a solve derives
from its problem. The grid varies the prior's strength (TV's weight, a denoiser's noise
input σ) over :data:`STRENGTH` times its default and the solver's step over :data:`STEP`
times its default. A cell passes when the defaults end within 1 dB of the grid's best and
above the initialiser's PSNR. With ``--auto`` each cell with noise also gets the PSNR with
the strength tuned from the data (``api.tune``, SURE). Prints one markdown row per cell and
a summary line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import torch

from deq_explorer import api, metrics
from deq_explorer.images import center_crop, load_sample, to_gray
from deq_explorer.registry import format_spec, parse_spec, priors, solvers

#: (operator, noise level, images): photos for the photo operators, the brain slice for MRI
PROBLEMS = (
    ("denoise", 0.05, "photo"),
    ("deblur:sigma=1.6", 0.01, "photo"),
    ("sr:scale=2", 0.01, "photo"),
    ("sr-bicubic:scale=3", 0.01, "photo"),
    ("inpaint:p=0.5", 0.01, "photo"),
    ("inpaint:p=0.8", 0.0, "photo"),
    ("mri:rate=0.3", 0.01, "mri"),
    ("mri:rate=0.1", 0.005, "mri"),
)
IMAGES = {"photo": ("camera", "astronaut"), "mri": ("brain",)}
PRIORS = ("tv", "dncnn-awgn", "dncnn-mri", "sn-dncnn-awgn", "deq-mri-radial10", "deq-sr",
          "mtdeq", "mcnet-sr2")  # fmt: skip
STRENGTH = (0.25, 0.5, 1.0, 2.0, 4.0)
STEP = (0.5, 1.0, 2.0)
#: the option of each solver that is its step
STEP_OPTION = {"pnp-pgm": "gamma", "red-sd": "gamma", "fb": "eta", "pnp-admm": "gamma",
               "mcnet-admm": "rho"}  # fmt: skip


def strength_option(prior: str) -> str:
    """The option of ``prior`` that sets its strength: ``sigma`` or TV's ``weight``."""
    return "sigma" if "sigma" in priors.entry(prior).options() else "weight"


def default_value(spec: str, option: str, registry, problem: api.Problem | None = None) -> float:
    """The value ``option`` takes in ``spec`` (derived from ``problem`` where the rule does)."""
    if problem is not None:
        spec = api.problem_defaults(spec, problem)
    return float(registry.options_of(spec)[1][option])


def solve(problem: api.Problem, prior: str, solver: str | None) -> float:
    solution = api.reconstruct(problem, prior=prior, solver=solver, max_iter=100)
    return float(metrics.psnr(solution.x, problem.x_true))


def tuned(problem: api.Problem, prior: str) -> float | None:
    """PSNR with the prior's strength ``auto`` (SURE); None without noise."""
    if problem.noise == 0:
        return None
    spec = format_spec(prior, {strength_option(prior): api.AUTO})
    return solve(problem, api.tune(problem, prior=spec, max_iter=100).spec, None)


def cell(problem: api.Problem, prior: str, log: dict, key: str, fresh: bool, auto: bool) -> dict:
    """Defaults and grid PSNRs of one cell (cached in ``log`` under ``key``; with ``fresh``
    the defaults are solved again and the cached grid kept; with ``auto`` the tuned PSNR is
    added)."""
    if key in log:
        if fresh:
            log[key] = {**log[key], "defaults": solve(problem, prior, None)}
        if auto and "auto" not in log[key]:
            log[key] = {**log[key], "auto": tuned(problem, prior)}
        return log[key]
    settled = api.Request(prior=prior).settled()
    solver_name, solver_opts = parse_spec(settled.solver)
    strength = strength_option(prior)
    s0 = default_value(prior, strength, priors, problem)
    step = STEP_OPTION[solver_name]
    g0 = default_value(settled.solver, step, solvers)
    grid = {}
    for a, b in itertools.product(STRENGTH, STEP):
        p = format_spec(prior, {strength: f"{a * s0:.6g}"})
        s = format_spec(solver_name, {**solver_opts, step: f"{b * g0:.6g}"})
        grid[f"{a}x{b}"] = solve(problem, p, s)
    out = {"start": float(metrics.psnr(problem.x_init(), problem.x_true)),
           "defaults": solve(problem, prior, None), "grid": grid,
           "strength": [strength, s0], "step": [step, g0]}  # fmt: skip
    if auto:
        out["auto"] = tuned(problem, prior)
    log[key] = out
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--priors", nargs="*", default=list(PRIORS))
    parser.add_argument("--images", nargs="*", default=None, help="photos (default: camera, "
                        "astronaut); MRI always uses the brain slice")  # fmt: skip
    parser.add_argument("--operators", nargs="*", default=None, help="subset of the operators")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log", type=Path, default=None, help="JSON-lines cache of cells")
    parser.add_argument("--fresh-defaults", action="store_true", help="solve the defaults "
                        "again for cached cells (after a rule changed)")  # fmt: skip
    parser.add_argument("--auto", action="store_true", help="also the PSNR with the strength "
                        "tuned from the data (sigma=auto, tv:weight=auto; SURE)")  # fmt: skip
    parser.add_argument("--save", type=Path, default=None, help="write the cells (with "
                        "the fresh results) to this JSON-lines file")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log: dict = {}
    if args.log is not None and args.log.exists():
        for line in args.log.read_text().splitlines():
            log.update(json.loads(line))
    photos = tuple(args.images) if args.images else IMAGES["photo"]
    print("| problem | image | prior | start | defaults | best grid (strength×step) | gap |"
          + (" auto (SURE) |" if args.auto else ""))  # fmt: skip
    print("|---|---|---|---|---|---|---|" + ("---|" if args.auto else ""))
    gaps, above = [], []
    for (op, noise, kind), prior in itertools.product(PROBLEMS, args.priors):
        if args.operators and op not in args.operators:
            continue
        for name in photos if kind == "photo" else IMAGES["mri"]:
            image = center_crop(to_gray(load_sample(name)), args.size)
            problem = api.simulate(image, op, noise=noise, seed=0, crop=True)
            key = f"{op}|{noise}|{name}|{args.size}|{prior}"
            fresh = key not in log
            r = cell(problem, prior, log, key, args.fresh_defaults, args.auto)
            if fresh and args.log is not None:
                with args.log.open("a") as f:
                    f.write(json.dumps({key: r}) + "\n")
            best = max(r["grid"], key=r["grid"].get)
            gap = r["grid"][best] - r["defaults"]
            gaps.append(gap)
            above.append(r["defaults"] > r["start"])
            flag = "" if gap <= 1.0 and above[-1] else " ✗"
            extra = ""
            if args.auto:
                extra = " – |" if r.get("auto") is None else f" {r['auto']:.2f} |"
            print(f"| {op}, σ {noise} | {name} | {prior} | {r['start']:.2f} | "
                  f"{r['defaults']:.2f} | {r['grid'][best]:.2f} ({best}) | {gap:+.2f}{flag} |"
                  + extra, flush=True)  # fmt: skip
            if args.save is not None:
                with args.save.open("a") as f:
                    f.write(json.dumps({key: r}) + "\n")
    ok = sum(g <= 1.0 and a for g, a in zip(gaps, above, strict=True))
    print(f"\ndefaults within 1 dB of the grid's best and above the start: {ok}/{len(gaps)} "
          f"({100 * ok / max(len(gaps), 1):.0f} %); mean gap {statistics.mean(gaps):.2f} dB, "
          f"largest {max(gaps):.2f} dB; above the start {sum(above)}/{len(above)}")  # fmt: skip


if __name__ == "__main__":
    main()
