"""Copy weights between DEQ Explorer's DnCNN and deepinv's DnCNN.

The two networks have the same convolutions when ours has no batch
normalisation and residual learning: ours returns ``x − body(x)``, deepinv's
``x + out_conv(…)``, so the last convolution changes sign.
"""

from __future__ import annotations

from deepinv.models import DnCNN as DinvDnCNN
from torch import Tensor

from deq_explorer.priors.nets import DnCNN

__all__ = ["dncnn_from_deepinv", "dncnn_to_deepinv"]


def _check(net: DnCNN) -> None:
    if net.batch_norm or not net.residual or net.noise_map:
        raise ValueError(
            "only a DnCNN without batch norm and noise map, with residual learning, has a "
            "deepinv twin: build it with DnCNN(..., batch_norm=False, residual=True, "
            "noise_map=False)"
        )


def _convs(net: DnCNN) -> list:
    return [m for m in net.body if hasattr(m, "weight")]


def dncnn_to_deepinv(net: DnCNN) -> DinvDnCNN:
    """A deepinv DnCNN computing the same function as ``net`` (weights copied)."""
    _check(net)
    twin = DinvDnCNN(
        in_channels=net.channels,
        out_channels=net.channels,
        depth=net.depth,
        nf=net.width,
        pretrained=None,
        device="cpu",
    )
    convs = _convs(net)
    targets = [twin.in_conv, *twin.conv_list, twin.out_conv]
    for k, (src, dst) in enumerate(zip(convs, targets, strict=True)):
        sign = -1.0 if k == len(convs) - 1 else 1.0
        dst.weight.data.copy_(sign * src.weight.data)
        dst.bias.data.copy_(sign * src.bias.data)
    p = next(net.parameters())
    return twin.to(device=p.device, dtype=p.dtype).eval()


def dncnn_from_deepinv(twin: DinvDnCNN) -> DnCNN:
    """DEQ Explorer's DnCNN computing the same function as deepinv's ``twin``."""
    w: Tensor = twin.in_conv.weight
    net = DnCNN(
        channels=w.shape[1],
        depth=twin.depth,
        width=w.shape[0],
        batch_norm=False,
        residual=True,
    )
    sources = [twin.in_conv, *twin.conv_list, twin.out_conv]
    convs = _convs(net)
    for k, (src, dst) in enumerate(zip(sources, convs, strict=True)):
        sign = -1.0 if k == len(sources) - 1 else 1.0
        dst.weight.data.copy_(sign * src.weight.data)
        dst.bias.data.copy_(sign * src.bias.data)
    return net.to(device=w.device, dtype=w.dtype).eval()
