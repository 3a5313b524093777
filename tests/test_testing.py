"""deq_explorer.testing: the contracts catch what they claim to, and packs install for a test."""

import pytest

from deq_explorer.operators.denoise import Denoise
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.registry import operators
from deq_explorer.testing import check_operator, check_prior, installed


class Leaky(Denoise):
    """A = I with an adjoint 1 % off."""

    def A_adjoint(self, y):
        return 1.01 * y


def register_leaky() -> None:
    operators.register("test-leaky", lambda shape, device=None, dtype=None: Leaky(shape))


def test_a_wrong_adjoint_fails_the_operator_contract(installed_pack):
    installed_pack(register_leaky, "leaky-pack")
    assert operators.entry("test-leaky").source == "leaky-pack"
    with pytest.raises(AssertionError, match=r"test-leaky: <Ax, y> != <x, Aᵀy>"):
        check_operator("test-leaky")


def test_a_prior_mixing_batch_items_fails_the_prior_contract():
    check_prior(DenoiserPrior(lambda x, s: 0.9 * x, 0.1, name="shrink"))
    mixing = DenoiserPrior(lambda x, s: x.mean(0, keepdim=True).expand_as(x), 0.1, name="mix")
    with pytest.raises(AssertionError, match="mix: batch items interact"):
        check_prior(mixing)


def test_installed_rolls_back_new_and_replaced_entries():
    original = operators.get("deblur")

    def register() -> None:
        register_leaky()
        operators.register("deblur", lambda shape, device=None, dtype=None: None, replace=True)

    with installed(register):
        assert "test-leaky" in operators.names() and operators.get("deblur") is not original
    assert "test-leaky" not in operators.names() and operators.get("deblur") is original
    with pytest.raises(RuntimeError), installed(register):
        raise RuntimeError("a failing test")
    assert "test-leaky" not in operators.names()
