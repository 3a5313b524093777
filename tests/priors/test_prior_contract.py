"""The Prior contract, for every registered prior (the shipped checkpoints included)."""

import pytest

from deq_explorer.registry import priors
from deq_explorer.testing import check_prior


@pytest.mark.parametrize("name", priors.names())
def test_contract(name):
    check_prior(name)
