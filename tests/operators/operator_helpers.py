"""Shared helpers for the operator tests (imported by name: tests have no packages)."""

from __future__ import annotations

import pytest
import torch

import deq_explorer  # noqa: F401  (registers the built-ins)
from deq_explorer.registry import operators

#: the CUDA cases are marked ``cuda``: skipped without a GPU, run by scripts/gpu_check.sh
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

#: odd sizes unless the operator needs divisibility (sr) or one channel (mri)
SHAPES = {"sr": (2, 36, 30), "sr-bicubic": (2, 36, 30), "mri": (1, 37, 31)}


def shape_for(name: str) -> tuple[int, int, int]:
    return SHAPES.get(name, (2, 37, 31))


def build(name: str, dtype: torch.dtype = torch.float64, device: str = "cpu", **options):
    spec = name + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")
    return operators.build(spec, shape=shape_for(name), device=device, dtype=dtype)


def rand_y(op, batch: int, dtype: torch.dtype, gen: torch.Generator, device: str = "cpu"):
    """A random measurement (complex where the operator's measurements are)."""
    probe = op.A(torch.zeros((1, *op.x_shape), dtype=dtype, device=device))
    y = torch.randn((batch, *op.y_shape), dtype=dtype, generator=gen).to(device)
    if probe.is_complex():
        y = torch.complex(y, torch.randn(y.shape, dtype=dtype, generator=gen).to(device))
    return y
