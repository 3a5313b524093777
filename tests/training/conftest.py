"""Shared fixtures: one intra-op thread and a folder of tiny smooth test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.io
import torch
from scipy import ndimage

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 40×40 gray PNGs (smooth random fields) and one RGB PNG in a sub-folder."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(3):
        a = ndimage.gaussian_filter(rng.random((40, 40)), 2)
        a = (a - a.min()) / (a.max() - a.min())
        skimage.io.imsave(d / f"im{i}.png", (a * 255).astype(np.uint8), check_contrast=False)
    (d / "sub").mkdir()
    rgb = ndimage.gaussian_filter(rng.random((40, 48, 3)), (2, 2, 0))
    rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min())
    skimage.io.imsave(d / "sub" / "rgb.png", (rgb * 255).astype(np.uint8), check_contrast=False)
    (d / "notes.txt").write_text("not an image")
    return d
