"""deepinv denoisers as priors: local weights only, and DnCNN weight conversion."""

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
from deepinv.models import DnCNN as DinvDnCNN
from deepinv.models import DRUNet
from deq_explorer_deepinv.convert import dncnn_from_deepinv, dncnn_to_deepinv

from deq_explorer.fixedpoint import StopRule, solve
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.nets import DnCNN
from deq_explorer.registry import operators, priors, solvers


def test_priors_registered():
    assert {"dinv-dncnn", "dinv-drunet"} <= set(priors.names())
    assert priors.entry("dinv-dncnn").options()["weights"] == ""


def test_no_weights_warns_untrained(gen):
    with pytest.warns(UserWarning, match="randomly initialised"):
        prior = priors.build("dinv-dncnn:depth=4,width=8")
    x = torch.rand((2, 1, 20, 18), generator=gen)
    assert prior.denoise(x).shape == x.shape


def test_missing_weights_file_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        priors.build(f"dinv-dncnn:weights={tmp_path / 'nope.pth'}")


@pytest.mark.parametrize(
    "spec, net",
    [
        ("dinv-dncnn:depth=4,width=8,sigma=0.1", lambda: DinvDnCNN(1, 1, 4, nf=8, pretrained=None)),
        (
            "dinv-drunet:width=8,blocks=1,sigma=0.1",
            lambda: DRUNet(1, 1, nc=(8, 16, 32, 64), nb=1, pretrained=None),
        ),
    ],
)
def test_weights_load_from_a_local_file(spec, net, tmp_path, gen):
    torch.manual_seed(3)
    source = net().eval()
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    prior = priors.build(f"{spec},weights={path}")
    x = torch.rand((1, 1, 32, 32), generator=gen)
    with torch.no_grad():
        expected = source(x, 0.1)
        assert torch.allclose(prior.denoise(x), expected, atol=1e-6)
        with pytest.warns(UserWarning):
            untrained = priors.build(spec)
        assert not torch.allclose(untrained.denoise(x), expected, atol=1e-3)


def test_dncnn_conversion_both_ways(gen):
    torch.manual_seed(0)
    ours = DnCNN(channels=1, depth=5, width=8, batch_norm=False).eval()
    x = torch.rand((2, 1, 24, 20), generator=gen)
    twin = dncnn_to_deepinv(ours)
    back = dncnn_from_deepinv(twin)
    with torch.no_grad():
        assert torch.allclose(twin(x), ours(x), atol=1e-6)
        assert torch.allclose(back(x), ours(x), atol=1e-6)
    with pytest.raises(ValueError, match="batch_norm=False"):
        dncnn_to_deepinv(DnCNN(channels=1, depth=3, width=4, batch_norm=True))


def test_bridged_operator_and_prior_solve_like_the_core(tmp_path, gen):
    """PnP-PGM with deepinv's blur and DnCNN equals the same solve with the core's pieces."""
    torch.manual_seed(1)
    ours = DnCNN(channels=1, depth=4, width=8, batch_norm=False).eval()
    path = tmp_path / "dncnn.pth"
    torch.save(dncnn_to_deepinv(ours).state_dict(), path)
    prior = priors.build(f"dinv-dncnn:depth=4,width=8,sigma=0.05,weights={path}")
    op = operators.build("dinv-blur:sigma=1.0", shape=(1, 32, 32))
    x = torch.rand((1, 1, 32, 32), generator=gen)
    y = op.measure(x, 0.01, gen)
    rule = StopRule(max_iter=5, tol=0.0)
    a = solve(solvers.build("pnp-pgm", op=op, prior=prior, y=y), rule=rule)
    b = solve(solvers.build("pnp-pgm", op=op, prior=DenoiserPrior(ours, 0.05), y=y), rule=rule)
    assert a.iterations == 5 and torch.isfinite(a.x).all()
    assert torch.allclose(a.x, b.x, atol=1e-5)
