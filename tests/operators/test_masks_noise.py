"""MRI sampling masks and the noise model."""

from __future__ import annotations

import math

import pytest
import torch

from deq_explorer.operators.base import OperatorError
from deq_explorer.operators.masks import cartesian_mask, centered, radial_lines, radial_mask
from deq_explorer.operators.mri import _mirror
from deq_explorer.operators.noise import add_noise
from deq_explorer.registry import operators


@pytest.mark.parametrize("shape", [(37, 31), (64, 64), (48, 40)])
@pytest.mark.parametrize("rate", [0.05, 0.1, 0.25, 0.5])
def test_radial_mask_reaches_rate(shape, rate):
    m = radial_mask(shape, rate)
    frac = float(m.double().mean())
    one_line = 2 * max(shape) / (shape[0] * shape[1])  # a line adds at most this much
    assert rate <= frac <= rate + one_line
    assert bool(m[0, 0])  # DC sampled
    assert torch.equal(m, _mirror(m))  # Hermitian-symmetric


def test_radial_lines_are_lines_through_the_centre():
    m = centered(radial_lines((33, 33), 2, 0.0))  # horizontal and vertical
    expected = torch.zeros(33, 33, dtype=torch.bool)
    expected[16, :] = True
    expected[:, 16] = True
    assert torch.equal(m, expected)


def test_radial_seed_rotates_and_rate_one_is_full():
    assert not torch.equal(radial_mask((40, 40), 0.2, 0), radial_mask((40, 40), 0.2, 1))
    assert torch.equal(radial_mask((40, 40), 0.2, 5), radial_mask((40, 40), 0.2, 5))
    assert bool(radial_mask((20, 18), 1.0).all())
    assert bool(radial_mask((20, 18), 0.999).all())


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.6])
def test_cartesian_mask_rate_centre_and_density(rate):
    h, w = 64, 40
    m = cartesian_mask((h, w), rate, seed=0)
    assert float(m.double().mean()) == pytest.approx(math.ceil(rate * h) / h)
    assert bool((m == m[:, :1]).all())  # whole rows
    centre = max(1, math.ceil(rate * h) // 3)
    near_dc = [0, 1, -1, 2, -2, 3, -3][:centre]
    assert bool(m[near_dc].all())  # fully sampled centre block
    counts = torch.zeros(h)
    for seed in range(200):
        counts += cartesian_mask((h, w), rate, seed)[:, 0].double()
    k = torch.arange(h)
    dist = torch.minimum(k, h - k)
    near, far = counts[(dist >= 6) & (dist < 14)].mean(), counts[dist >= 24].mean()
    assert near > 2 * far  # density falls off away from DC


def test_mri_operator_exposes_mask():
    op = operators.build("mri:rate=0.2,pattern=cartesian,seed=2", shape=(1, 32, 24))
    assert op.mask.shape == (32, 24) and op.mask.dtype == torch.bool
    assert op.rate == pytest.approx(float(op.mask.double().mean()))
    assert torch.equal(op.mask_centered, torch.fft.fftshift(op.mask))
    assert torch.equal(op.mask, cartesian_mask((32, 24), 0.2, 2))


def test_mri_zero_filled_init_fits_the_samples():
    """``init`` is ``A⁺y``: it reproduces the data even where ``−k`` is not sampled."""
    op = operators.build("mri:rate=0.3,pattern=cartesian,seed=1", shape=(1, 20, 16))
    assert not torch.equal(op.mask, _mirror(op.mask))
    x = torch.rand(2, 1, 20, 16, dtype=torch.float64)
    y = op.A(x.float()).to(torch.complex128)
    assert torch.allclose(op.A(op.init(y)), y, atol=1e-5)


def test_noise_statistics_and_seeding():
    y = torch.zeros(4, 1, 64, 64)
    n = add_noise(y, 0.1, torch.Generator().manual_seed(0))
    assert float(n.std()) == pytest.approx(0.1, rel=0.02)
    assert torch.equal(n, add_noise(y, 0.1, torch.Generator().manual_seed(0)))
    assert not torch.equal(n, add_noise(y, 0.1, torch.Generator().manual_seed(1)))
    assert torch.equal(add_noise(y, 0.0, None), y)
    yc = torch.zeros(4, 1, 64, 64, dtype=torch.complex128)
    nc = add_noise(yc, 0.1, torch.Generator().manual_seed(0))
    assert nc.dtype == torch.complex128
    assert float(nc.real.std()) == pytest.approx(0.1, rel=0.02)
    assert float(nc.imag.std()) == pytest.approx(0.1, rel=0.02)


def test_complex_noise_gives_image_noise_sigma_at_full_sampling():
    op = operators.build("mri:rate=1.0", shape=(1, 64, 64), dtype=torch.float64)
    x = torch.zeros(4, 1, 64, 64, dtype=torch.float64)
    y = op.measure(x, 0.05, torch.Generator().manual_seed(3))
    assert float(op.A_adjoint(y).std()) == pytest.approx(0.05, rel=0.03)


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf")])
def test_bad_noise_level(sigma):
    with pytest.raises(OperatorError, match="sigma"):
        add_noise(torch.zeros(1, 1, 4, 4), sigma, None)


def test_inpaint_init_fills_the_holes_from_the_kept_pixels():
    """Normalised convolution: kept pixels exact, holes near the truth, big holes filled too."""
    from deq_explorer import metrics
    from deq_explorer.images import center_crop, load_sample
    from deq_explorer.registry import operators

    x = torch.from_numpy(center_crop(load_sample("camera"), 96))[None]
    for p, gain in ((0.5, 12.0), (0.9, 10.0)):
        op = operators.build(f"inpaint:p={p}", shape=(1, 96, 96))
        y = op.A(x)
        x0 = op.init(y)
        kept = op.mask.expand_as(x0)
        assert torch.equal(x0[kept], y[kept])  # the measured pixels as measured
        assert metrics.psnr(x0, x) > metrics.psnr(op.A_adjoint(y), x) + gain
    # a user mask with one large hole (a 40×40 square): filled, finite, in the image's range
    from deq_explorer.operators.inpaint import Inpaint

    mask = torch.ones(96, 96, dtype=torch.bool)
    mask[20:60, 30:70] = False
    op = Inpaint((1, 96, 96), mask)
    x0 = op.init(op.A(x))
    hole = x0[0, 0, 20:60, 30:70]
    assert torch.isfinite(hole).all() and float(hole.min()) >= 0 and float(hole.max()) <= 1
    assert float((hole - x[0, 0, 20:60, 30:70]).abs().mean()) < 0.3
    nothing = Inpaint((1, 8, 8), torch.zeros(8, 8, dtype=torch.bool))
    assert torch.equal(nothing.init(torch.zeros(1, 1, 8, 8)), torch.zeros(1, 1, 8, 8))
