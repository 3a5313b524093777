"""Test-wide settings: one torch thread (tests are small; threads only add contention),
tests marked ``cuda`` skip cleanly where no CUDA device is present, the GUI's folder of
trained priors is a fresh temporary one (never the user's), and the fixture
``installed_pack`` of :mod:`deq_explorer.testing`."""

import os
import tempfile

import pytest
import torch

from deq_explorer.testing import installed_pack  # noqa: F401  (a fixture)

os.environ["DEQ_EXPLORER_PRIORS"] = tempfile.mkdtemp(prefix="deq-explorer-priors-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (scripts/gpu_check.sh runs these on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
