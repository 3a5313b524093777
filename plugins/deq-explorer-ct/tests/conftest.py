"""Make the pack importable from its source tree when it is not installed; one torch thread;
the fixture ``installed_pack``."""

import sys
from pathlib import Path

import pytest
import torch

from deq_explorer.testing import installed_pack  # noqa: F401  (a fixture)

PACK_ROOT = Path(__file__).resolve().parents[1]

try:
    import deq_explorer_ct  # noqa: F401
except ImportError:
    sys.path.insert(0, str(PACK_ROOT))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tests' tensors are small: a single thread avoids oversubscribing shared CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
