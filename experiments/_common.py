"""Helpers shared by the experiment scripts (run them from the repository root)."""

from __future__ import annotations

import numpy as np

import deq_explorer.api as dx
from deq_explorer.images import center_crop, load_image, to_gray
from deq_explorer.metrics import psnr, ssim
from deq_explorer.presets import SR_X3, options

#: the solve of experiment 2 (PnP-PGM with Anderson), the default of :func:`score`
SOLVE = options(SR_X3)


def test_image(name: str, side: int) -> np.ndarray:
    """Centre ``side``² crop of a held-out sample, gray, ``(1, side, side)``."""
    return center_crop(to_gray(load_image(f"sample:{name}")), side)


def score(
    problem: dx.Problem, prior: str, solve: dict | None = None
) -> tuple[float, float, np.ndarray]:
    """PSNR, SSIM and the image of a reconstruction with ``prior`` (default solve: SOLVE)."""
    x = dx.reconstruct(problem, prior=prior, **(solve or SOLVE)).x
    return psnr(x, problem.x_true), ssim(x, problem.x_true), x[0, 0].cpu().numpy()
