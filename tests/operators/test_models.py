"""Operator-specific facts: kernels, decimation, bicubic resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deq_explorer.operators.kernels import centroid, gaussian_kernel
from deq_explorer.operators.resize import imresize_matrix
from deq_explorer.registry import operators


def test_deblur_delta_stays_in_place_and_blur_preserves_mean():
    op = operators.build("deblur:sigma=1.6", shape=(1, 37, 31), dtype=torch.float64)
    x = torch.zeros(1, 1, 37, 31, dtype=torch.float64)
    x[0, 0, 10, 7] = 1.0
    y = op.A(x)[0, 0]
    assert divmod(int(y.argmax()), 31) == (10, 7)
    assert torch.allclose(y, y.flip(0).roll(2 * 10 + 1, 0), atol=1e-12)  # symmetric about it
    assert float(y.sum()) == pytest.approx(1.0)
    identity = operators.build("deblur:sigma=0", shape=(1, 5, 5), dtype=torch.float64)
    assert torch.allclose(identity.A(x[..., :5, :5]), x[..., :5, :5])


def test_user_kernel_is_centred(tmp_path):
    k = np.zeros((3, 5))
    k[1, 2], k[1, 3] = 0.75, 0.25  # centre (1, 2) plus a tap one column right
    np.save(tmp_path / "k.npy", k)
    op = operators.build(
        f"deblur:kernel={tmp_path / 'k.npy'}", shape=(1, 9, 8), dtype=torch.float64
    )
    x = torch.zeros(1, 1, 9, 8, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0
    y = op.A(x)[0, 0]
    assert float(y[4, 4]) == pytest.approx(0.75) and float(y[4, 5]) == pytest.approx(0.25)


def test_sr_is_blur_then_decimation():
    op = operators.build("sr:scale=3,sigma=1.2", shape=(2, 36, 30), dtype=torch.float64)
    blur = operators.build("deblur:sigma=1.2", shape=(2, 36, 30), dtype=torch.float64)
    x = torch.rand(2, 2, 36, 30, dtype=torch.float64)
    assert torch.allclose(op.A(x), blur.A(x)[..., ::3, ::3], atol=1e-12)


def test_sr_box_is_pixel_binning_and_init_aligned():
    op = operators.build("sr:scale=2,kernel=box", shape=(1, 12, 8), dtype=torch.float64)
    x = torch.rand(1, 1, 12, 8, dtype=torch.float64)
    binned = x.reshape(1, 1, 6, 2, 4, 2).mean(dim=(3, 5))
    assert torch.allclose(op.A(x), binned, atol=1e-12)
    assert centroid(op.kernel) == pytest.approx((0.5, 0.5))
    # a linear ramp along rows is reproduced (away from the wrap-around)
    ramp = torch.arange(12, dtype=torch.float64)[:, None].expand(12, 8)[None, None]
    assert torch.allclose(op.init(op.A(ramp))[..., 3:9, :], ramp[..., 3:9, :], atol=1e-9)


def test_gaussian_kernel_has_no_spectral_zeros():
    k = gaussian_kernel((37, 31), 1.6)
    assert float(k.sum()) == pytest.approx(1.0)
    assert float(torch.fft.fft2(k).real.min()) > 0


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_matches_pillow_inside(scale):
    """MATLAB-style anti-aliased bicubic equals Pillow's away from the borders."""
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(scale)
    h, w = 12 * scale, 10 * scale
    x = rng.random((h, w)).astype(np.float32)
    op = operators.build(f"sr-bicubic:scale={scale}", shape=(1, h, w), dtype=torch.float64)
    ours = op.A(torch.from_numpy(x).double()[None, None])[0, 0].numpy()
    pil = np.asarray(image.fromarray(x, mode="F").resize((w // scale, h // scale), image.BICUBIC))
    assert np.abs(ours - pil)[2:-2, 2:-2].max() < 1e-6
    y = rng.random((h // scale, w // scale)).astype(np.float32)
    up = op.init(torch.from_numpy(y).double()[None, None])[0, 0].numpy()
    pil = np.asarray(image.fromarray(y, mode="F").resize((w, h), image.BICUBIC))
    b = 2 * scale
    assert np.abs(up - pil)[b:-b, b:-b].max() < 1e-6


def test_imresize_rows_sum_to_one_and_fold_symmetrically():
    m = imresize_matrix(10, 5)
    assert torch.allclose(m.sum(1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(m, m.flip(0, 1))  # symmetric boundary: mirror-invariant
    x = torch.full((1, 1, 10, 10), 0.3, dtype=torch.float64)
    op = operators.build("sr-bicubic:scale=2", shape=(1, 10, 10), dtype=torch.float64)
    assert torch.allclose(op.A(x), torch.full((1, 1, 5, 5), 0.3, dtype=torch.float64))
