"""The core's LinearOperator contract over the bridged deepinv physics."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "deepinv",
    reason="deepinv is not installed: run these tests in the benchmark environment "
    "(bash benchmarks/env.sh; deepinv needs torch==2.14.1 torchvision==0.29.1)",
)
pytest.importorskip(
    "deq_explorer_deepinv",
    reason="the pack is not installed: pip install -e plugins/deq-explorer-deepinv",
)

import torch

from deq_explorer.operators.base import OperatorError
from deq_explorer.registry import operators, plugin_errors
from deq_explorer.testing import check_operator

#: spec → whether ``project(x, y, 0)`` is exact (closed form, or CG on a well-conditioned
#: AᵀA); tomography: fewer angles than pixels, so y is in the range
SPECS = {
    "dinv-blur": True,
    "dinv-downsampling": True,
    "dinv-inpainting": True,
    "dinv-mri": True,
    "dinv-tomography:angles=8": False,
}


def test_pack_registered_without_errors():
    assert "deepinv" not in plugin_errors()
    assert {s.split(":")[0] for s in SPECS} <= set(operators.names())
    assert operators.entry("dinv-blur").source == "deepinv"


@pytest.mark.parametrize("spec", SPECS)
def test_contract(spec):
    check_operator(spec, prox_tol=1e-9, exact_pinv=SPECS[spec])


@pytest.mark.parametrize("spec", SPECS)
def test_norm_at_most_one_and_negative_gamma_refused(spec, gen):
    op = operators.build(spec, shape=(1, 16, 16), dtype=torch.float64)
    assert 0 < op.lipschitz() <= 1 + 1e-6  # all these physics have ‖A‖ ≤ 1
    z = torch.randn((1, *op.x_shape), dtype=torch.float64, generator=gen)
    with pytest.raises(OperatorError, match="gamma"):
        op.prox_data(z, op.A(z), -1.0)


@pytest.mark.parametrize(
    "spec, shape, match",
    [
        ("dinv-downsampling:factor=4", (1, 30, 30), "divide"),
        ("dinv-downsampling:filter=box", (1, 32, 32), "filter"),
        ("dinv-mri", (3, 32, 32), "single-channel"),
        ("dinv-mri:pattern=spiral", (1, 32, 32), "pattern"),
        ("dinv-tomography", (1, 32, 30), "square"),
        ("dinv-inpainting:p=0", (1, 8, 8), "fraction"),
        ("dinv-blur:sigma=9", (1, 16, 16), "does not fit"),
    ],
)
def test_bad_options_are_explained(spec, shape, match):
    with pytest.raises(OperatorError, match=match):
        operators.build(spec, shape=shape)


def test_blur_agrees_with_the_core_deblur(gen):
    """Same Gaussian, same circular boundary: deepinv's BlurFFT equals the core's deblur."""
    from deepinv.physics.functional import gaussian_blur

    from deq_explorer.operators.deblur import Deblur

    shape = (1, 33, 29)
    ours = operators.build("deblur:sigma=1.3", shape=shape, dtype=torch.float64)
    theirs = operators.build("dinv-blur:sigma=1.3", shape=shape, dtype=torch.float64)
    x = torch.rand((1, *shape), dtype=torch.float64, generator=gen)
    assert isinstance(ours, Deblur)
    assert gaussian_blur(sigma=(1.3, 1.3)).sum() == pytest.approx(1.0, rel=1e-6)
    rel = float((ours.A(x) - theirs.A(x)).norm() / ours.A(x).norm())
    assert rel < 1e-2  # kernels are truncated differently; the models agree to the truncation
