"""Every third-party import is declared by the distribution that ships the module.

Walks the source of ``deq_explorer/`` (the core against ``dependencies``, ``_napari/``
against ``dependencies`` + the ``napari`` extra), of ``tests/`` (+ the ``test`` extra) and of
each pack under ``plugins/`` (against the pack's own ``pyproject.toml``, plus the core's
requirements, which its ``deq-explorer`` requirement brings). An import inside
``try: … except ImportError`` is optional and exempt; so is one guarded by
``sys.version_info`` if the requirement carries the matching environment marker.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {
    "deq_explorer",
    "deq_explorer_ct",
    "deq_explorer_deepinv",
    "deq_explorer_tinypack",
    "tests",
}
#: local helper modules of the test folders, imported by bare name, and the one import that
#: is meant to fail (the registry tests' broken pack)
LOCAL = {"conftest", "a_module_that_does_not_exist"}
#: an import name whose distribution name differs and is not installed here to look it up
KNOWN = {"skimage": "scikit-image", "pywt": "pywavelets", "yaml": "pyyaml", "PyQt6": "pyqt6"}


def _name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement string."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]).lower()


def imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports of ``path`` that are not optional."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    optional: set[int] = set()
    for node in ast.walk(tree):
        guarded = isinstance(node, ast.Try) and any(
            h.type is not None
            and re.search(r"\b(ImportError|ModuleNotFoundError)\b", ast.unparse(h.type))
            for h in node.handlers
        )
        guarded |= isinstance(node, ast.If) and "version_info" in ast.unparse(node.test)
        if guarded:
            optional |= {id(n) for part in node.body for n in ast.walk(part)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party(names: set[str]) -> set[str]:
    return {
        n
        for n in names
        if n not in sys.stdlib_module_names and n not in FIRST_PARTY and n not in LOCAL
    }


@functools.cache
def _installed() -> dict[str, list[str]]:
    return md.packages_distributions()


def distributions(module: str) -> set[str]:
    """The distributions that provide import name ``module`` (normalised names)."""
    found = _installed().get(module, [])
    return {_name(d) for d in found} or {_name(KNOWN.get(module, module))}


def requirements(pyproject: Path, *extras: str) -> set[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return {_name(r) for r in reqs}


CORE = requirements(ROOT / "pyproject.toml")
GUI = requirements(ROOT / "pyproject.toml", "napari")
TEST = requirements(ROOT / "pyproject.toml", "napari", "test")
PACKS = sorted(p.parent for p in [*ROOT.glob("plugins/*/pyproject.toml"),
                                  *ROOT.glob("tests/**/pyproject.toml")])  # fmt: skip


def _cases() -> list[tuple[Path, set[str], str]]:
    cases = []
    for path in sorted((ROOT / "deq_explorer").rglob("*.py")):
        gui = "_napari" in path.relative_to(ROOT).parts
        cases.append((path, GUI if gui else CORE, "[napari] extra" if gui else "dependencies"))
    cases += [
        (p, TEST, "[test] extra")
        for p in sorted((ROOT / "tests").rglob("*.py"))
        if not any(pack in p.parents for pack in PACKS)
    ]
    for pack in PACKS:
        own = requirements(pack / "pyproject.toml")
        tests = own | requirements(pack / "pyproject.toml", "test") | TEST
        for path in sorted(pack.rglob("*.py")):
            in_tests = "tests" in path.relative_to(pack).parts
            cases.append((path, (tests if in_tests else own | CORE), f"{pack.name}'s pyproject"))
    return cases


@pytest.mark.parametrize(
    ("path", "declared", "where"),
    _cases(),
    ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else "",
)
def test_every_import_is_declared(path: Path, declared: set[str], where: str) -> None:
    missing = {m: distributions(m) for m in third_party(imports(path))}
    missing = {m: d for m, d in missing.items() if not d & declared}
    assert not missing, (
        f"{path.relative_to(ROOT)} imports {sorted(missing)} "
        f"(from {sorted(set().union(*missing.values()))}), not declared in {where}"
    )


def test_the_walker_sees_what_it_must(tmp_path: Path) -> None:
    """The walker itself: plain, dotted, from- and in-function imports count; guarded ones not."""
    src = tmp_path / "m.py"
    src.write_text(
        "import numpy as np\nimport a.b\nfrom c.d import e\nfrom . import rel\nimport os\n"
        "def f():\n    import g\n"
        "try:\n    import opt\nexcept ImportError:\n    opt = None\n"
        "if sys.version_info < (3, 11):\n    import tomli\n"
    )
    assert third_party(imports(src)) == {"numpy", "a", "c", "g"}
    assert "safetensors" in CORE and "psygnal" in GUI and "psygnal" not in CORE
    assert distributions("skimage") == {"scikit-image"}
