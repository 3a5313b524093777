"""Third seed paper, Tables 1–2 at CPU scale: SR backbones made measurement-consistent by MCNet.

Usage::

    python experiments/mcnet.py [--quick] [--out experiments/results]

Bicubic super-resolution ×2/×3/×4 without noise, on the luma (Y) of held-out images.
Methods: bicubic upsampling; PnP (the constrained problem with ``dncnn-awgn``, i.e. the
``mcnet-admm`` iteration with β → 0); the trained SRCNN backbone ``srcnn-x<s>`` alone; and
backbone + the ``mcnet-sr2`` layer (its spectrally normalised DnCNN6 and learned β) with ε = 0
and ε = ``EPS`` (and, as a control, the layer before training: ``sn-dncnn-awgn`` with β = 1).
The layer was trained at ×2 only, so ×3 and ×4 test it out of its training
scale (the paper trained one per scale). Reports the data fidelity ‖Ax̂ − b‖₂ and PSNR / SSIM.
Writes ``mcnet.md`` and ``mcnet.png``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from _common import test_image

import deq_explorer.api as dx
from deq_explorer.metrics import consistency, psnr, ssim
from deq_explorer.registry import priors

EPS = 0.1
SOLVE = {"accel": "anderson:m=5", "max_iter": 100, "tol": 1e-4}
PNP_SIGMA = 0.01
#: paper's Table 2, Set5 PSNR: (bicubic, PnP, SRCNN, MCNet+SRCNN)
PAPER = {
    2: (33.69, 37.43, 36.65, 37.23),
    3: (30.89, 33.65, 33.36, 34.05),
    4: (28.43, 30.29, 30.33, 31.07),
}
#: paper's Table 1, Set5 ×2 data fidelity ‖AZ − b‖₂
PAPER_FIDELITY = {"bicubic": 1.27, "PnP": 2.2e-5, "SRCNN": 0.306, "MCNet+SRCNN (ε = 0)": 2.6e-5}


def methods(problem: dx.Problem, scale: int, beta: float) -> dict[str, dx.Solution | torch.Tensor]:
    """Each method's output image ``(1, 1, H, W)`` (MCNet runs also return their Solution)."""
    w = dx.backbone(problem, f"srcnn-x{scale}")
    mcnet = f"mcnet-admm:beta={beta:.6g},rho=1"
    return {
        "bicubic": problem.x_init(),
        "PnP": dx.reconstruct(
            problem,
            prior=f"dncnn-awgn:sigma={PNP_SIGMA}",
            solver="mcnet-admm:eps=0,beta=0.001",
            **SOLVE,
        ),
        "SRCNN": w,
        "MCNet+SRCNN (ε = 0), layer untrained": dx.reconstruct(
            problem, prior="sn-dncnn-awgn", solver="mcnet-admm:beta=1,rho=1,eps=0", w=w, **SOLVE
        ),
        "MCNet+SRCNN (ε = 0)": dx.reconstruct(
            problem, prior="mcnet-sr2", solver=f"{mcnet},eps=0", w=w, **SOLVE
        ),
        f"MCNet+SRCNN (ε = {EPS})": dx.reconstruct(
            problem, prior="mcnet-sr2", solver=f"{mcnet},eps={EPS}", w=w, **SOLVE
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 96² image, scales 2 and 3")
    parser.add_argument("--out", default="experiments/results")
    args = parser.parse_args()
    side = 96 if args.quick else 144
    names = ["camera"] if args.quick else ["camera", "astronaut", "phantom"]
    scales = (2, 3) if args.quick else (2, 3, 4)
    images = {n: test_image(n, side) for n in names}  # luma Y of the colour ones
    beta = float(priors.entry("mcnet-sr2").metadata["beta"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    lines = [
        f"Images: {', '.join(names)} ({side}², luma Y). Bicubic SR without noise. MCNet layer: "
        f"`mcnet-sr2` (learned β = {beta:.3g}, ρ = 1); PnP: dncnn-awgn σ = {PNP_SIGMA}, ε = 0, "
        f"β = 0.001. Iterative methods: Anderson m = 5, ≤ {SOLVE['max_iter']} iterations, "
        f"tol {SOLVE['tol']}.",
        "",
        "| scale | method | ‖Ax̂ − b‖₂ | PSNR / SSIM | iterations | paper PSNR (Set5) |",
        "|---|---|---|---|---|---|",
    ]
    shown, curves = {}, {}
    for s in scales:
        problems = [dx.simulate(img, f"sr-bicubic:scale={s}", noise=0.0) for img in images.values()]
        runs = [methods(p, s, beta) for p in problems]
        paper = dict(zip(("bicubic", "PnP", "SRCNN", "MCNet+SRCNN (ε = 0)"), PAPER[s], strict=True))
        for name in runs[0]:
            outs = [r[name] for r in runs]
            xs = [o.x if isinstance(o, dx.Solution) else o for o in outs]
            fid = statistics.mean(
                consistency(p.op, x, p.y) for x, p in zip(xs, problems, strict=True)
            )
            p_ = statistics.mean(
                psnr(x.clamp(0, 1), p.x_true) for x, p in zip(xs, problems, strict=True)
            )
            s_ = statistics.mean(
                ssim(x.clamp(0, 1), p.x_true) for x, p in zip(xs, problems, strict=True)
            )
            its = (
                f"{statistics.mean(o.iterations for o in outs):.0f}"
                if isinstance(outs[0], dx.Solution)
                else "–"
            )
            ref = f"{paper[name]:.2f}" if name in paper else "–"
            if s == 2 and name in PAPER_FIDELITY:
                ref += f" (‖AZ − b‖ {PAPER_FIDELITY[name]:.2g})"
            lines.append(f"| ×{s} | {name} | {fid:.2e} | {p_:.2f} / {s_:.3f} | {its} | {ref} |")
            print(lines[-1], flush=True)
            shown[(s, name)] = xs[0][0, 0].cpu().numpy()
            if isinstance(outs[0], dx.Solution):
                curves[(s, name)] = outs[0].history["residual"]
        shown[(s, "truth")] = problems[0].x_true[0, 0].cpu().numpy()
    lines += [
        "",
        "‖Ax̂ − b‖₂ is `deq_explorer.metrics.consistency` (Euclidean norm over the whole "
        "low-resolution image), averaged over the images.",
    ]
    (out / "mcnet.md").write_text("\n".join(lines) + "\n")
    figure(shown, curves, scales[0], out / "mcnet.png")
    print(f"wrote {out / 'mcnet.md'} and {out / 'mcnet.png'}")


def figure(shown: dict, curves: dict, scale: int, path: Path) -> None:
    """Reconstructions at ``scale`` of the first image and the residual curves of its solves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["truth", "bicubic", "SRCNN", "MCNet+SRCNN (ε = 0)", "PnP"]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(3.0 * (len(keys) + 1), 3.3))
    truth = torch.as_tensor(shown[(scale, "truth")])
    for ax, key in zip(axes[:-1], keys, strict=True):
        img = shown[(scale, key)]
        ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
        score = (
            "" if key == "truth" else f"\n{psnr(torch.as_tensor(img).clamp(0, 1), truth):.2f} dB"
        )
        ax.set_title(f"×{scale} {key}{score}", fontsize=9)
        ax.axis("off")
    ax = axes[-1]
    for (s, name), r in curves.items():
        if s == scale:
            ax.semilogy(range(1, len(r) + 1), r, label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative residual")
    ax.set_title(f"×{scale} solves, first image", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)


if __name__ == "__main__":
    main()
