"""Additive white Gaussian noise on the [0, 1] intensity scale."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from deq_explorer.errors import OperatorError

__all__ = ["add_noise"]


def add_noise(y: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """``y + σ n`` with ``n`` standard normal, drawn from ``generator``.

    Parameters
    ----------
    y : Tensor
        Measurements of any shape, real or complex, on any device.
    sigma : float
        Standard deviation ``σ ≥ 0`` on the [0, 1] intensity scale. For complex
        ``y`` the real and the imaginary part each get std ``σ`` (so
        ``E|n|² = 2σ²``): with the orthonormal FFT of MRI, the zero-filled
        real-part image of fully sampled data then carries pixel noise of std
        ``σ``, exactly as in denoising.
    generator : torch.Generator, optional
        Source of randomness; the noise is drawn on the generator's device and
        moved to ``y``'s, so a CPU generator gives the same noise on CPU and CUDA.

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``y``.
    """
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise OperatorError(f"noise level sigma must be finite and >= 0, got {sigma}")
    if sigma == 0:
        return y.clone()
    real = y.real.dtype if y.is_complex() else y.dtype
    device = generator.device if generator is not None else y.device
    shape = (*y.shape, 2) if y.is_complex() else y.shape
    n = torch.randn(shape, generator=generator, device=device, dtype=real).to(y.device)
    if y.is_complex():
        n = torch.view_as_complex(n)
    return y + sigma * n
