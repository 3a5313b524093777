"""Registry behaviour and entry-point packs (a tiny pack is really pip-installed)."""

import subprocess
import sys
from pathlib import Path

import pytest

from deq_explorer import registry
from deq_explorer.registry import Registry, SpecError, parse_spec

PACK = Path(__file__).parent / "tinypack"


def test_parse_spec():
    assert parse_spec("mri:rate=0.1, pattern=radial") == (
        "mri",
        {"rate": "0.1", "pattern": "radial"},
    )
    assert parse_spec("denoise") == ("denoise", {})
    for bad in ["", "mri:rate", "mri:=3"]:
        with pytest.raises(SpecError):
            parse_spec(bad)


def _reg():
    reg = Registry("widget")

    @reg.register("box", aliases=("crate",))
    def box(shape, *, size: int = 3, scale: float = 1.0, label: str = "a", on: bool = False):
        """A box."""
        return (shape, size, scale, label, on)

    return reg


def test_build_converts_types_and_passes_context():
    reg = _reg()
    assert reg.build("box:size=5,scale=2,label=b,on=true", shape=(1, 2)) == (
        (1, 2),
        5,
        2.0,
        "b",
        True,
    )
    assert reg.build("crate", shape=None) == (None, 3, 1.0, "a", False)
    assert reg.entry("box").summary == "A box."
    assert reg.entry("box").options() == {"size": 3, "scale": 1.0, "label": "a", "on": False}


def test_errors_name_the_problem():
    reg = _reg()
    with pytest.raises(SpecError, match="unknown widget 'bx'; known widgets: box"):
        reg.build("bx", shape=None)
    with pytest.raises(SpecError, match=r"no option .colour.*size=3"):
        reg.build("box:colour=red", shape=None)
    with pytest.raises(SpecError, match="cannot read 'big' as int"):
        reg.build("box:size=big", shape=None)
    with pytest.raises(SpecError, match="no option 'shape'"):
        reg.build("box:shape=3", shape=None)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("box", lambda: None)


def test_create_takes_typed_options_and_context_checked_like_build():
    reg = _reg()
    assert reg.create("box", shape=(1, 2), size=5, on=True) == ((1, 2), 5, 1.0, "a", True)
    assert reg.create("crate", shape=None) == reg.build("crate", shape=None)
    with pytest.raises(SpecError, match="unknown widget 'bx'"):
        reg.create("bx", shape=None)
    accepted = r"context arguments: shape; options: size, scale, label, on"
    with pytest.raises(SpecError, match=rf"'box' takes no argument 'sise'; {accepted}"):
        reg.create("box", shape=None, sise=5)
    # build refuses a misspelled context key instead of dropping it
    with pytest.raises(SpecError, match=rf"'box' takes no argument 'shap'; {accepted}"):
        reg.build("box:size=2", shap=None)


def test_builtin_factories_take_the_context_the_core_passes():
    import torch

    import deq_explorer  # noqa: F401

    for name in ("identity", "tv"):  # api.build_prior passes the device
        registry.priors.build(name, device="cpu", dtype=torch.float32)
    op = registry.operators.create("deblur", shape=(1, 8, 8), device="cpu", sigma=1.0)
    prior = registry.priors.create("tv", weight=0.1)
    y = op.A(torch.rand(1, 1, 8, 8))
    fp = registry.solvers.create("fb", op=op, prior=prior, y=y, w=None, eta=0.5)
    assert fp.z0.shape == y.shape
    assert (
        registry.solvers.resolve(registry.format_spec("fb", {"eta": 0.5})) == "fb:eta=0.5,sigma=-1"
    )


def test_builtin_names_are_stable():
    import deq_explorer  # noqa: F401

    assert {"pnp-pgm", "red-sd", "pnp-admm", "fb", "mcnet-admm"} <= set(registry.solvers.names())
    assert {"none", "nesterov", "anderson"} <= set(registry.accelerators.names())
    assert {"identity", "tv"} <= set(registry.priors.names())
    assert {"denoise", "deblur", "sr", "sr-bicubic", "inpaint", "mri"} <= set(
        registry.operators.names()
    )


@pytest.fixture(scope="module")
def pip_installed_pack(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--target",
            str(target),
            str(PACK),
        ],
        check=True,
    )
    sys.path.insert(0, str(target))
    with pytest.warns(RuntimeWarning, match="plugin pack 'broken' failed"):
        registry.load_plugins(reload=True)
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("deq_explorer_tinypack")]:
        del sys.modules[name]
    registry.load_plugins(reload=True)


def test_pack_entries_appear_everywhere(pip_installed_pack):
    import torch

    assert "tiny-scale" in registry.operators.names()
    assert registry.operators.entry("tiny-scale").source == "tinypack"
    op = registry.operators.build("tiny-scale:c=3", shape=(1, 4, 4), device="cpu")
    x = torch.ones(1, 1, 4, 4)
    assert torch.equal(op.A(x), 3 * x)
    prior = registry.priors.build("tiny-shrink:s=0.5")
    assert torch.equal(prior.denoise(x), 0.5 * x)


def test_broken_packs_are_reported_and_rolled_back(pip_installed_pack):
    errors = registry.plugin_errors()
    assert "ModuleNotFoundError" in errors["broken"]
    assert "already registered" in errors["clash"]
    # the clashing pack's first, valid registration was rolled back too
    assert "tiny-clash-ok" not in registry.priors.names()
    # built-ins are untouched
    assert "tv" in registry.priors.names()


def test_uninstalled_pack_disappears(pip_installed_pack):
    sys.path.remove(str(pip_installed_pack))
    try:
        registry.load_plugins(reload=True)
        assert "tiny-scale" not in registry.operators.names()
        assert registry.plugin_errors() == {}
    finally:
        sys.path.insert(0, str(pip_installed_pack))
        with pytest.warns(RuntimeWarning):
            registry.load_plugins(reload=True)
