"""DenoiserPrior: layout change is invisible in the values; PnP/RED views of one denoiser."""

import pytest
import torch

from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.nets import DnCNN


def test_channels_last_prior_matches_the_plain_network():
    torch.manual_seed(0)
    net = DnCNN(channels=1, depth=4, width=8, batch_norm=False).eval()
    reference = DnCNN(channels=1, depth=4, width=8, batch_norm=False).eval()
    reference.load_state_dict(net.state_dict())
    prior = DenoiserPrior(net, sigma=0.05)
    x = torch.rand(2, 1, 23, 17)
    with torch.no_grad():
        assert torch.allclose(prior.denoise(x), reference(x, 0.05), atol=1e-6)
        assert torch.allclose(prior.red_grad(x), x - reference(x, 0.05), atol=1e-6)
        assert torch.allclose(prior.prox(x, 0.3), reference(x, 0.05), atol=1e-6)
    assert next(net.parameters()).is_contiguous(memory_format=torch.channels_last)


def test_function_denoisers_are_used_as_they_are():
    prior = DenoiserPrior(lambda x, s: x * (1 - s), sigma=0.5)
    x = torch.ones(1, 1, 4, 4)
    assert torch.equal(prior.denoise(x), 0.5 * x)
    assert torch.equal(prior.denoise(x, sigma=0.25), 0.75 * x)


def test_a_gray_network_denoises_each_channel_of_a_colour_image():
    """A 1-channel prior on (B, 3, H, W): each channel alone, with each item's own σ."""
    from deq_explorer.priors.base import DenoiserPrior
    from deq_explorer.priors.nets import build_net

    torch.manual_seed(0)
    net = build_net("dncnn", {"depth": 3, "width": 8, "batch_norm": False}).eval()
    prior = DenoiserPrior(net, sigma=0.05, name="gray")
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.02, 0.1]).reshape(2, 1, 1, 1)
    with torch.no_grad():
        got = prior.denoise(x, sigma)
        for b in range(2):
            for c in range(3):
                alone = prior.denoise(x[b : b + 1, c : c + 1], sigma[b : b + 1])
                torch.testing.assert_close(got[b : b + 1, c : c + 1], alone)
    three = DenoiserPrior(build_net("dncnn", {"channels": 3, "depth": 3, "width": 8}), 0.05, "rgb")
    with pytest.raises(ValueError, match=r"3-channel images but the image has 1.*--gray"):
        three.denoise(torch.rand(1, 1, 12, 12))
