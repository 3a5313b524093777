"""Static checks run as tests: ruff and the import-linter layer contracts."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the 'test' extra")
def test_ruff_clean():
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is in 'test'")
def test_layers_respected():
    result = _run("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_import_pulls_no_qt():
    code = (
        "import sys, deq_explorer, deq_explorer.api, deq_explorer.cli;"
        "bad = [m for m in ('napari', 'qtpy', 'magicgui', 'PyQt6', 'PyQt5', 'PySide6')"
        " if m in sys.modules]; print(bad); raise SystemExit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
