"""The denoiser and prior contracts that classical and neural priors share."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from deq_explorer.errors import PriorError

__all__ = ["Denoiser", "DenoiserPrior", "Prior"]


@runtime_checkable
class Denoiser(Protocol):
    """Anything mapping a noisy image and a noise level to a clean estimate.

    ``denoiser(x, sigma) -> x_hat`` with ``x`` of shape ``(B, C, H, W)`` and
    ``sigma`` a float (or ``(B,)`` tensor) on the [0, 1] intensity scale.
    """

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor: ...


class Prior:
    """A regulariser ``g`` used through its denoiser ``D``.

    PnP algorithms call :meth:`prox` (``prox_{γg}``), RED algorithms call
    :meth:`red_grad` (``x − D(x)``). Subclasses implement :meth:`denoise`;
    classical priors with a true proximal operator override :meth:`prox`.

    Attributes
    ----------
    name : str
        Registry name, for labels and metadata.
    sigma : float
        Default noise level fed to the denoiser.
    module : torch.nn.Module or None
        The trainable network, if any (training and DEQ use it).
    """

    name: str = "prior"
    sigma: float = 0.0
    module: nn.Module | None = None

    def denoise(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """``D_σ(x)``; ``sigma=None`` uses :attr:`sigma`."""
        raise NotImplementedError

    def prox(self, x: Tensor, gamma: float) -> Tensor:
        """``prox_{γg}(x)``; for denoiser priors the denoiser itself (PnP)."""
        return self.denoise(x)

    def red_grad(self, x: Tensor) -> Tensor:
        """RED gradient ``x − D(x)``."""
        return x - self.denoise(x)

    def to(self, device: str | None = None, dtype=None) -> Prior:
        """Move any network to ``device``/``dtype``; returns ``self``."""
        if self.module is not None:
            self.module.to(device=device, dtype=dtype)
        return self


class DenoiserPrior(Prior):
    """Adapt any :class:`Denoiser` (a network, a function) into a :class:`Prior`.

    A network is switched to the channels-last memory layout, and its inputs with
    it: CPU convolutions run about 1.5× faster that way (BENCHMARKS.md); values
    are unchanged.
    """

    def __init__(self, denoiser: Denoiser, sigma: float, name: str = "denoiser") -> None:
        self.denoiser = denoiser
        self.sigma = float(sigma)
        self.name = name
        self.module = denoiser if isinstance(denoiser, nn.Module) else None
        if self.module is not None:
            for p in self.module.parameters():  # conv kernels only; buffers keep their layout
                if p.ndim == 4:
                    p.data = p.data.contiguous(memory_format=torch.channels_last)

    def denoise(self, x: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """Denoise ``x`` ``(B, C, H, W)``; a gray network denoises each channel of a colour one.

        ``sigma`` is a number or a tensor with one value per batch item.
        """
        sigma = self.sigma if sigma is None else sigma
        channels = getattr(self.module, "channels", None)
        if channels is not None and x.ndim == 4 and x.shape[1] != channels:
            b, c = x.shape[:2]
            if channels != 1:
                raise PriorError(
                    f"prior {self.name!r} denoises {channels}-channel images but the image has "
                    f"{c}: convert it to gray (--gray on the CLI) or use a {c}-channel prior "
                    f"(train one with --channels {c})"
                )
            if isinstance(sigma, Tensor) and sigma.numel() == b:  # one σ per item, per channel
                sigma = sigma.reshape(b).repeat_interleave(c).reshape(b * c, *sigma.shape[1:])
            gray = x.reshape(b * c, 1, *x.shape[2:])
            return self.denoise(gray, sigma).reshape(x.shape)
        if self.module is not None and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.denoiser(x, sigma)
