"""Option schemas read from factory signatures: types, defaults, ranges, help, derived options."""

import math
from typing import Annotated, Literal

import pytest

from deq_explorer import registry
from deq_explorer.registry import Meta, Range, Registry, SpecError
from deq_explorer.schema import read_options


def _by_name(entry):
    return {o.name: o for o in entry.schema()}


def test_a_bare_entry_gets_its_schema_from_types_and_defaults(installed_pack):
    def bare(shape, device=None, dtype=None, *, n=3, x: float = 1, on=False, label="a"):
        """A pack's entry with no metadata at all."""

    installed_pack(lambda: registry.operators.register("test-bare", bare))
    options = _by_name(registry.operators.entry("test-bare"))
    assert list(options) == ["n", "x", "on", "label"]  # context parameters are not options
    assert {k: o.type for k, o in options.items()} == {
        "n": int,
        "x": float,
        "on": bool,
        "label": str,
    }
    assert {k: o.default for k, o in options.items()} == {"n": 3, "x": 1, "on": False, "label": "a"}
    assert all(o.help == "" and o.range is None and o.choices == () for o in options.values())
    assert not any(o.optional or o.derived for o in options.values())
    # the annotation, not the default's type, says what a spec converts to
    assert registry.operators.options_of("test-bare:x=2.5,n=4")[1] == {
        "n": 4, "x": 2.5, "on": False, "label": "a"
    }  # fmt: skip


def test_annotated_meta_literal_and_none_make_the_schema():
    def gadget(
        *,
        rate: Annotated[float, Meta("fraction kept", "(0, 1]")] = 0.5,
        mode: Annotated[Literal["fast", "slow"], Meta("how")] = "fast",
        size: Literal[2, 3, 4] = 2,
        limit: Annotated[int | None, Meta("cap", "[1, inf)")] = None,
        path: Annotated[str, Meta("a file")] | None = None,
    ):
        return rate, mode, size, limit, path

    options = {o.name: o for o in read_options(gadget)}
    rate, mode, size, limit, path = options.values()
    assert (rate.type, rate.default, rate.help, str(rate.range)) == (
        float,
        0.5,
        "fraction kept",
        "(0, 1]",
    )
    assert (mode.type, mode.choices, mode.help) == (str, ("fast", "slow"), "how")
    assert (size.type, size.choices) == (int, (2, 3, 4))
    assert (limit.type, limit.optional, limit.range.low, limit.type_name) == (
        int,
        True,
        1,
        "int | None",
    )
    assert (path.type, path.optional, path.help) == (str, True, "a file")
    reg = Registry("gadget")
    reg.register("g", gadget)
    # parse converts to the schema's types; the factory, not the schema, checks the values
    assert reg.build("g:size=3,limit=none,rate=2") == (2.0, "fast", 3, None, None)
    assert reg.build("g:limit=7,mode=slow") == (0.5, "slow", 2, 7, None)
    with pytest.raises(SpecError, match=r"gadget 'g' option 'size': cannot read 'x' as int"):
        reg.build("g:size=x")


def _pack_solver(
    op: "LinearOperator",  # noqa: F821  (imported under TYPE_CHECKING in a pack's module)
    prior,
    y,
    w=None,
    *,
    step: "Annotated[float, Meta('step', '(0, inf)')]" = 1.0,
    n: "int" = 2,
):
    """A pack's solver typing its context with a name it does not import at run time."""


def test_an_unresolvable_context_annotation_leaves_the_options_schema():
    step, n = read_options(_pack_solver)
    assert (step.type, step.help, str(step.range)) == (float, "step", "(0, ∞)")
    assert (n.type, n.default) == (int, 2)


def test_builtin_options_carry_ranges_and_help():
    mri = _by_name(registry.operators.entry("mri"))
    assert str(mri["rate"].range) == "(0, 1]" and mri["rate"].help == "fraction of k-space sampled"
    assert mri["pattern"].choices == ("radial", "cartesian") and mri["seed"].type is int
    assert registry.operators.entry("sr-bicubic").schema()[0].choices == (2, 3, 4)
    inpaint = _by_name(registry.operators.entry("inpaint"))
    assert 0.0 in inpaint["p"].range and 1.0 not in inpaint["p"].range
    anderson = _by_name(registry.accelerators.entry("anderson"))
    assert (anderson["m"].type, anderson["m"].range.low, anderson["lam"].default) == (int, 1, 1e-2)
    assert anderson["safeguard"].help.startswith("undo a step")
    assert _by_name(registry.accelerators.entry("nesterov"))["restart"].type is bool
    gamma = _by_name(registry.solvers.entry("pnp-pgm"))["gamma"]
    assert gamma.help == "step size γ" and 0.0 not in gamma.range and 1e-9 in gamma.range
    sigma = _by_name(registry.priors.entry("dncnn-awgn"))["sigma"]  # a checkpoint prior's option
    assert sigma.type is float and sigma.help and sigma.default == pytest.approx(0.03)
    for reg in (registry.operators, registry.priors, registry.solvers, registry.accelerators):
        for entry in reg.entries():
            if entry.source == "builtin":
                assert all(o.help for o in entry.schema()), entry.name  # every built-in explains


def test_options_the_problem_sets_are_derived():
    tv = _by_name(registry.priors.entry("tv"))
    assert tv["weight"].derived and not tv["iters"].derived
    assert tv["weight"].describe() == {
        "name": "weight", "type": "float", "default": 0.05, "range": "[0, ∞)", "choices": [],
        "help": tv["weight"].help, "optional": False, "derived": True,
    }  # fmt: skip


def test_range_parse_contains_and_text():
    r = Range.parse("(0, 1]")
    assert (r.low, r.high, r.low_open, r.high_open) == (0, 1, True, False)
    assert 1 in r and 0 not in r and 0.5 in r and math.nan not in r and True not in r
    assert str(Range.parse("[0, inf)")) == "[0, ∞)" and str(Range.parse("(-inf, 1)")) == "(-∞, 1)"
    assert Range.parse("[1e-3, 2.5]").low == 1e-3
    for bad in ("0, 1", "[1, 0]", "[a, 1]", "(0; 1)"):
        with pytest.raises(ValueError, match="bad range"):
            Range.parse(bad)
    with pytest.raises(ValueError, match="bad range"):
        Meta("oops", "0..1")  # a pack's mistake shows where its factory is defined


def test_parse_and_format_round_trip():
    (x, on, k, s) = read_options(lambda *, x=0.1, on=True, k=3, s="a,b": None)
    for option, value in [(x, 1e-4), (x, 1.0154751539230347), (on, False), (k, -2), (s, "p q")]:
        assert option.parse(option.format(value)) == value
    assert x.format(1e-5) == "1e-05" and on.format(True) == "true"
    assert on.parse("off") is False and on.parse("YES") is True
    with pytest.raises(SpecError, match="option 'on': cannot read 'maybe' as bool"):
        on.parse("maybe")
