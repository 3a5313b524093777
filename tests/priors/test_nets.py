"""Networks: shapes, residual learning, noise-level maps, and a contractive SN-DnCNN."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jvp, vjp

from deq_explorer.priors.base import Denoiser
from deq_explorer.priors.nets import (
    ARCHITECTURES,
    DEFAULT_CONFIGS,
    SRCNN,
    DnCNN,
    SNDnCNN,
    UNetDenoiser,
    architecture_of,
    build_net,
)

SMALL = {
    "dncnn": {"depth": 4, "width": 8},
    "unet": {"widths": [8, 12, 16], "blocks": 1},
    "sn-dncnn": {"depth": 6, "width": 8},
}


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared: one intra-op thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", sorted(SMALL))
def test_denoiser_shapes(arch, channels):
    torch.manual_seed(0)
    net = build_net(arch, {**SMALL[arch], "channels": channels}).eval()
    assert isinstance(net, Denoiser)
    x = torch.rand(2, channels, 21, 19)
    with torch.no_grad():
        out = net(x, 0.1)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scale", [2, 3])
def test_srcnn_shapes_and_bicubic_start(channels, scale):
    torch.manual_seed(0)
    net = SRCNN(channels=channels, scale=scale, width=8)
    x = torch.rand(2, channels, 10, 7)
    out = net(x)
    assert out.shape == (2, channels, 10 * scale, 7 * scale)
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
        bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        torch.testing.assert_close(net(x), bicubic)


def test_dncnn_residual_learning():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    net = DnCNN(depth=5, width=8, batch_norm=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x, 0.0), x - net.body(x))
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
        assert torch.equal(net(x, 0.0), x)  # zero noise estimate: identity
    plain = DnCNN(depth=3, width=8, residual=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x, 0.0), plain.body(x))


def test_dncnn_sigma_only_with_noise_map():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    blind = DnCNN(depth=3, width=8, batch_norm=False).eval()
    mapped = DnCNN(depth=3, width=8, batch_norm=False, noise_map=True).eval()
    with torch.no_grad():
        assert torch.equal(blind(x, 0.05), blind(x, 0.5))
        assert not torch.allclose(mapped(x, 0.05), mapped(x, 0.5))


def test_unet_sigma_float_and_per_image():
    torch.manual_seed(0)
    net = UNetDenoiser(widths=(8, 16), blocks=1).eval()
    x = torch.rand(3, 1, 17, 22)
    with torch.no_grad():
        a = net(x, 0.1)
        torch.testing.assert_close(net(x, torch.full((3,), 0.1)), a)
        torch.testing.assert_close(net(x, torch.tensor(0.1)), a)
        assert not torch.allclose(net(x, 0.3), a)
        sig = torch.tensor([0.0, 0.1, 0.3])
        per_image = net(x, sig)
        for i in range(3):
            torch.testing.assert_close(per_image[i : i + 1], net(x[i : i + 1], float(sig[i])))
    with pytest.raises(ValueError, match="shape"):
        net(x, torch.ones(2))


def test_build_net_registry_and_errors():
    for arch, cls in ARCHITECTURES.items():
        net = build_net(arch, {**DEFAULT_CONFIGS[arch], **SMALL.get(arch, {"width": 8})})
        assert type(net) is cls and architecture_of(net) == arch
        assert type(build_net(arch, net.config())) is cls
        assert build_net(arch, net.config()).config() == net.config()
    assert build_net("dncnn").config()["depth"] == DEFAULT_CONFIGS["dncnn"]["depth"]
    with pytest.raises(ValueError, match=r"unknown network architecture 'resnet'.*dncnn"):
        build_net("resnet", {})
    with pytest.raises(ValueError, match="no option 'height'"):
        build_net("dncnn", {"height": 3})
    with pytest.raises(ValueError, match="depth"):
        build_net("dncnn", {"depth": 1})
    with pytest.raises(ValueError, match="not a known architecture"):
        architecture_of(nn.Conv2d(1, 1, 3))


# --- contractivity of the spectral-normalised DnCNN -------------------------------------


def conv_norm(weight: torch.Tensor, size: int, steps: int = 800) -> float:
    """Independent float64 power iteration for the zero-padded 3×3 conv on size×size."""
    g = torch.Generator().manual_seed(123)
    w = weight.detach().double()
    u = torch.randn(1, w.shape[1], size, size, generator=g, dtype=torch.float64)
    for _ in range(steps):
        u = F.conv_transpose2d(F.conv2d(u, w, padding=1), w, padding=1)
        u = u / u.norm()
    return F.conv2d(u, w, padding=1).norm().item()


def jacobian_norm(f, x: torch.Tensor, steps: int = 60) -> float:
    """‖∂f/∂x‖₂ at ``x`` by power iteration on JᵀJ (jvp then vjp)."""
    g = torch.Generator().manual_seed(7)
    v = torch.randn(x.shape, generator=g, dtype=x.dtype)
    v = v / v.norm()
    _, pullback = vjp(f, x)
    for _ in range(steps):
        _, jv = jvp(f, (x,), (v,))
        (w,) = pullback(jv)
        v = w / w.norm()
    _, jv = jvp(f, (x,), (v,))
    return jv.norm().item()


def test_jacobian_norm_estimator_is_exact_on_a_linear_map():
    w = torch.randn(4, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    x = torch.rand(1, 4, 12, 12)
    est = jacobian_norm(lambda z: F.conv2d(z, w, padding=1), x, steps=150)
    assert est == pytest.approx(conv_norm(w, 12), rel=1e-3)


def circular_norm(weight: torch.Tensor, n: int) -> float:
    """Exact norm of the circular conv on an n×n torus: largest singular value over frequencies."""
    symbol = torch.fft.rfft2(weight.detach().double(), s=(n, n)).permute(2, 3, 0, 1)
    return torch.linalg.matrix_norm(symbol, ord=2).max().item()


def test_sn_layers_normalise_the_conv_operator_not_the_kernel_matrix():
    torch.manual_seed(0)
    net = SNDnCNN(width=8, depth=6, lipschitz=0.9, probe=16)
    net.refresh(200)
    bound = 0.9 ** (1 / 6)
    matrix_norms = []
    for conv in net.convs:
        w = conv.normalized_weight()
        assert circular_norm(w, 16) == pytest.approx(bound, rel=1e-4)
        assert conv_norm(w, 15, 300) <= bound * (
            1 + 1e-6
        )  # zero-padded images below the probe size
        assert conv_norm(w, 48, 200) == pytest.approx(bound, rel=1e-2)  # larger images: close
        matrix_norms.append(torch.linalg.matrix_norm(w.flatten(1), ord=2).item())
    # the reshaped kernel matrices have clearly smaller norms: normalising them would not do
    assert max(matrix_norms) < 0.9 * bound and min(matrix_norms) < 0.7 * bound


def _train(net: nn.Module, steps: int = 40) -> None:
    """Adam towards an expansive target f(x) = 3x, which pushes the Lipschitz constant up."""
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        x = torch.rand(4, 1, 16, 16, generator=g)
        loss = (net(x, 0.0) - 3 * x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


def test_sndncnn_lipschitz_below_one_before_and_after_training():
    torch.manual_seed(0)
    net = SNDnCNN(width=8, lipschitz=0.95, probe=16).eval()
    x = torch.rand(1, 1, 16, 16)
    f = lambda z: net(z, 0.0)  # noqa: E731
    assert jacobian_norm(f, x) < 1.0
    _train(net)
    u_after = [c.u.clone() for c in net.convs]
    lip = jacobian_norm(f, x)
    assert 0.5 < lip < 1.0, lip  # training pushed it up, normalisation held it below 1
    # a global bound on 15×15 images: the product of the layers' operator norms
    layer_norms = [conv_norm(c.normalized_weight(), 15, 300) for c in net.convs]
    assert math.prod(layer_norms) <= 0.95 * (1 + 1e-3)
    with torch.no_grad():
        y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        assert (net(x, 0.0) - net(y, 0.0)).norm() < (x - y).norm()
    # eval mode leaves the power-iteration probes alone: the map is deterministic
    assert all(torch.equal(a, c.u) for a, c in zip(u_after, net.convs, strict=True))

    # control: the same training without normalisation does exceed 1, so the check can fail
    torch.manual_seed(0)
    plain = nn.Sequential(
        *[
            m
            for i in range(6)
            for m in (
                nn.Conv2d(1 if i == 0 else 8, 1 if i == 5 else 8, 3, padding=1, bias=False),
                nn.ReLU(),
            )
        ][:-1]
    )
    plain_f = lambda z, s=0.0: plain(z)  # noqa: E731
    _train(_Wrap(plain))
    assert jacobian_norm(plain_f, x) > 1.0


class _Wrap(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        return self.body(x)


def test_sn_inference_cache_follows_the_weights():
    torch.manual_seed(0)
    net = SNDnCNN(depth=3, width=8).eval()
    x = torch.rand(1, 1, 16, 16)

    def fresh() -> torch.Tensor:
        with torch.enable_grad():
            return net(x).detach()

    with torch.no_grad():
        first = net(x)
        assert torch.equal(net(x), first) and torch.allclose(first, fresh(), atol=1e-6)
        for conv in net.convs:
            conv.weight.add_(0.1 * torch.randn_like(conv.weight))  # like an optimizer step
    with torch.inference_mode():
        second = net(x)
    with torch.no_grad():
        assert torch.allclose(second, fresh(), atol=1e-6) and not torch.allclose(second, first)
        net.refresh(5)  # new probes: new scale
        assert torch.allclose(net(x), fresh(), atol=1e-6)
