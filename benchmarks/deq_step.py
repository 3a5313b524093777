"""Time and peak memory of one DEQ training step against the number of forward iterations.

Run by hand (not a test)::

    python benchmarks/deq_step.py [--size 64] [--batch 1] [--iters 10 25 50 100 200]
                                  [--backward-iters 30] [--device cpu|cuda]

One step = forward fixed point of PnP-PGM (deblurring, DnCNN 8×32) for exactly
``K`` iterations (tolerance 0), loss ``½‖x̄ − x‖²``, backward, Adam update;
backward rules: implicit (``--backward-iters`` VJP iterations, plain),
Jacobian-free, and unrolled (graph kept through all ``K`` iterations).

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` during the step minus
the memory allocated before it. On CPU, torch's allocations are invisible to
``tracemalloc``, so every configuration runs in a fresh process and reports
the growth of the process's peak resident set (``ru_maxrss``) across the step
— a high-water mark of what the step needed beyond the warmed-up model and
data (an untimed single network application with backward and an Adam update
runs first, so the Adam state is allocated; glibc may keep freed pages, so small
values are noisy at the 1–2 MB level). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from deq_explorer.deq import DEQ, Forward, Implicit, JacobianFree, Unrolled
from deq_explorer.fixedpoint.base import StopRule
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.nets import build_net
from deq_explorer.registry import operators, solvers

RULES = ("implicit", "jfb", "unrolled")


def one(rule: str, iters: int, args: argparse.Namespace) -> dict[str, float]:
    """Time (s) and peak memory growth (MiB) of one training step, in this process."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    net = build_net("dncnn", {"depth": 8, "width": 32}).to(device).eval()
    prior = DenoiserPrior(net, 0.01, name="bench")
    shape = (1, args.size, args.size)
    op = operators.build("deblur:sigma=1.6", shape=shape, device=device)
    x = torch.rand(args.batch, *shape, generator=torch.Generator().manual_seed(1)).to(device)
    y = op.A(x) + 0.01 * torch.randn_like(op.A(x))
    backward = {
        "implicit": Implicit(rule=StopRule(max_iter=args.backward_iters, tol=0)),
        "jfb": JacobianFree(),
        "unrolled": Unrolled(),
    }[rule]
    deq = DEQ(forward=Forward(rule=StopRule(max_iter=iters, tol=0)), backward=backward)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> None:
        fp = solvers.build("pnp-pgm:gamma=1.0,tau=0.5", op=op, prior=prior, y=y)
        opt.zero_grad(set_to_none=True)
        z, _ = deq(fp)
        (0.5 * (fp.image(z) - x).pow(2).sum()).backward()
        opt.step()

    # warm-up without the DEQ (one prior application, backward, Adam state): the step's own
    # high-water mark must not be set before it is measured
    opt.zero_grad(set_to_none=True)
    net(y).pow(2).sum().backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # KiB on Linux
    return {"seconds": seconds, "mib": mib}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    p.add_argument("--backward-iters", type=int, default=30)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--one", nargs=2, metavar=("RULE", "ITERS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args)))
        return
    rows = {}
    for k in args.iters:
        for rule in RULES:
            cmd = [sys.executable, __file__, "--size", str(args.size), "--batch", str(args.batch),
                   "--backward-iters", str(args.backward_iters), "--device", args.device,
                   "--one", rule, str(k)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows[k, rule] = json.loads(out.strip().splitlines()[-1])
            print(f"  K={k} {rule}: {rows[k, rule]}", file=sys.stderr)
    print(
        f"\nOne DEQ step, PnP-PGM deblur, DnCNN 8×32, {args.batch}×1×{args.size}², "
        f"device {args.device}, implicit backward {args.backward_iters} iterations\n"
    )
    head = " | ".join(f"{r} s | {r} MiB" for r in RULES)
    print(f"| K | {head} |")
    print("|---" * (1 + 2 * len(RULES)) + "|")
    for k in args.iters:
        cells = " | ".join(f"{rows[k, r]['seconds']:.3f} | {rows[k, r]['mib']:.1f}" for r in RULES)
        print(f"| {k} | {cells} |")


if __name__ == "__main__":
    main()
