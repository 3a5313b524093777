"""Fixtures for the deepinv pack's tests.

The tests run in the benchmark environment made by ``benchmarks/env.sh``::

    /work/benchenv/bin/python -m pytest plugins/deq-explorer-deepinv/tests

Where deepinv (or the pack) is not installed every module skips with the reason.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
