"""Issue 6, row 4: one DEQ training step, ours against deepinv's DEQ and torchdeq, same map.

Run by hand in the benchmark environment (``bash benchmarks/env.sh``)::

    /work/benchenv/bin/python benchmarks/deq_peers.py [--size 64] [--iters 10 25 50 100 200]
        [--backward-iters 30] [--repeats 3] [--threads 2] [--device cpu]

The map: PnP-PGM for Gaussian deblurring (σ_blur 1.6, noise 0.01) with a DnCNN 8×32 prior
(the briefly trained weights of ``vs_deepinv.py``, copied into deepinv's DnCNN), one image
``1×1×size²``. A step = forward fixed point for exactly ``K`` iterations (no early stop), loss
``½‖x̄ − x‖²``, backward, Adam update. Backward rules:

- ours: ``Implicit`` (``--backward-iters`` plain VJP iterations), ``JacobianFree``, ``Unrolled``;
- torchdeq 0.1.0 (``get_deq``): ``ift=True`` with ``b_max_iter`` = the same count (implicit), and
  ``ift=False, grad=1`` (one-step phantom gradient = Jacobian-free); its solver
  ``fixed_point_iter`` with ``f_tol=0``. It iterates *our* map ``T`` (torchdeq takes any map);
- deepinv 0.5.0: ``PGD(g_first=True, prior=RED)`` — the same iteration with its own physics and
  DnCNN — with ``DEQ=DEQConfig(max_iter_backward=…)`` and ``DEQConfig(jacobian_free=True)``.

Every configuration runs in a fresh process. Memory: growth of the process's peak resident set
(``ru_maxrss``) across the first step after a warm-up of the network alone (CUDA:
``max_memory_allocated`` growth). Time: median of ``--repeats`` further steps. Prints a
markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from vs_deepinv import deepinv_model, deepinv_physics, test_image, train_dncnn

from deq_explorer.deq import DEQ, Forward, Implicit, JacobianFree, Unrolled
from deq_explorer.fixedpoint.base import StopRule
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.registry import operators, solvers

CONFIGS = (
    ("ours", "implicit"),
    ("ours", "jfb"),
    ("ours", "unrolled"),
    ("torchdeq", "implicit"),
    ("torchdeq", "jfb"),
    ("deepinv", "implicit"),
    ("deepinv", "jfb"),
)
SIGMA, NOISE = 0.05, 0.01


def step_fn(lib: str, rule: str, iters: int, args: argparse.Namespace):
    """A closure running one training step, and the network it trains."""
    device = torch.device(args.device)
    net = train_dncnn(Path(args.weights), 300, device)
    size = args.size
    op = operators.build("deblur:sigma=1.6", shape=(1, size, size), device=device)
    x = test_image(size, device)
    g = torch.Generator().manual_seed(1)
    y = op.A(x) + NOISE * torch.randn(x.shape, generator=g).to(device)
    if lib == "deepinv":
        from deepinv.optim.optimizers import DEQConfig
        from deq_explorer_deepinv.convert import dncnn_to_deepinv

        twin = dncnn_to_deepinv(net).train()
        physics = deepinv_physics("deblur", op, size, device)
        cfg = DEQConfig(jacobian_free=rule == "jfb", max_iter_backward=args.backward_iters)
        model = deepinv_model("pnp-pgm", twin, iters, early=False, tol=0.0)
        model.DEQ, model.DEQ_config = True, cfg
        opt = torch.optim.Adam(twin.parameters(), lr=1e-4)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            out = model(y, physics, init=y)
            (0.5 * (out - x).pow(2).sum()).backward()
            opt.step()

        return step, twin
    prior = DenoiserPrior(net, SIGMA, name="bench")
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    if lib == "ours":
        backward = {
            "implicit": Implicit(rule=StopRule(max_iter=args.backward_iters, tol=0)),
            "jfb": JacobianFree(),
            "unrolled": Unrolled(),
        }[rule]
        deq = DEQ(forward=Forward(rule=StopRule(max_iter=iters, tol=0)), backward=backward)

        def step() -> None:
            fp = solvers.build("pnp-pgm:gamma=1.0,tau=0.5", op=op, prior=prior, y=y)
            opt.zero_grad(set_to_none=True)
            z, _ = deq(fp)
            (0.5 * (fp.image(z) - x).pow(2).sum()).backward()
            opt.step()

        return step, net
    from torchdeq import get_deq

    options = dict(f_solver="fixed_point_iter", f_max_iter=iters, f_tol=0.0)
    if rule == "implicit":
        options.update(ift=True, b_solver="fixed_point_iter", b_max_iter=args.backward_iters,
                       b_tol=0.0)  # fmt: skip
    else:
        options.update(ift=False, grad=1)
    deq = get_deq(**options)

    def step() -> None:
        fp = solvers.build("pnp-pgm:gamma=1.0,tau=0.5", op=op, prior=prior, y=y)
        opt.zero_grad(set_to_none=True)
        zs, _ = deq(fp.T, fp.z0)
        (0.5 * (fp.image(zs[-1]) - x).pow(2).sum()).backward()
        opt.step()

    return step, net


def one(lib: str, rule: str, iters: int, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    step, net = step_fn(lib, rule, iters, args)
    device = torch.device(args.device)
    # warm-up of the network alone (allocator, kernels): the step's peak is measured next
    probe = torch.rand(1, 1, args.size, args.size, device=device)
    net(probe).pow(2).sum().backward()
    net.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "spread": max(times) - min(times), "mib": mib}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iters", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    p.add_argument("--backward-iters", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights", default="/tmp/vs_deepinv_dncnn8x32.pt")
    p.add_argument("--one", nargs=3, metavar=("LIB", "RULE", "ITERS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], int(args.one[2]), args)))
        return
    rows = {}
    for k in args.iters:
        for lib, rule in CONFIGS:
            cmd = [sys.executable, __file__, "--size", str(args.size), "--repeats",
                   str(args.repeats), "--threads", str(args.threads), "--device", args.device,
                   "--backward-iters", str(args.backward_iters), "--weights", args.weights,
                   "--one", lib, rule, str(k)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{lib} {rule} K={k} failed")
            rows[k, lib, rule] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  K={k} {lib} {rule}: {rows[k, lib, rule]}", file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(
        f"\nOne DEQ training step, PnP-PGM deblur σ 1.6, DnCNN 8×32, 1×1×{args.size}², "
        f"device {args.device}, {args.threads} threads, torch {torch.__version__}, "
        f"backward {args.backward_iters} iterations, load {load[0]:.1f}; "
        f"median of {args.repeats} steps (s) and peak-memory growth (MiB)\n"
    )
    names = [f"{lib} {rule}" for lib, rule in CONFIGS]
    print("| K | " + " | ".join(names) + " |")
    print("|---" * (1 + len(names)) + "|")
    for k in args.iters:
        cells = [
            f"{rows[k, lib, rule]['seconds']:.3f} s · {rows[k, lib, rule]['mib']:.0f} MiB"
            for lib, rule in CONFIGS
        ]
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
