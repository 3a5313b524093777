"""Plot a checkpoint's validation curve (PSNR and SSIM against the step) as a PNG.

Usage::

    python scripts/training_curve.py CHECKPOINT.safetensors [OUT.png]

The curve is the ``metrics.val_curve`` record ``train`` writes into every checkpoint
(continued across ``--resume``); OUT defaults to the checkpoint's path with
``.curve.png``. Model cards embed the result.
"""

from __future__ import annotations

import sys
from pathlib import Path

from deq_explorer.priors.checkpoint import read_metadata


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0])
    out = Path(argv[1]) if len(argv) > 1 else path.with_suffix(".curve.png")
    meta = read_metadata(path)
    curve = (meta.get("metrics") or {}).get("val_curve")
    if not curve:
        print(
            f"{path} has no validation curve (trained before curves were recorded)", file=sys.stderr
        )
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, psnr, ssim = zip(*curve, strict=True)
    fig, left = plt.subplots(figsize=(5, 3))
    left.plot(steps, psnr, "o-", color="tab:blue", markersize=3)
    left.set_xlabel("step")
    left.set_ylabel("validation PSNR (dB)", color="tab:blue")
    right = left.twinx()
    right.plot(steps, ssim, "s--", color="tab:orange", markersize=3)
    right.set_ylabel("validation SSIM", color="tab:orange")
    left.set_title(f"{meta.get('name', path.stem)} ({meta.get('mode', '?')})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
