"""Static checks run as tests: ruff and the import-linter layer contracts."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def _tool(name: str) -> str:
    """A console script of the 'test' extra: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: install the 'test' extra (pip install -e '.[test]')"
    return found


def test_ruff_clean():
    result = _run(_tool("ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_layers_respected():
    result = _run(_tool("lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_import_pulls_no_qt():
    code = (
        "import sys, deq_explorer, deq_explorer.api, deq_explorer.cli;"
        "bad = [m for m in ('napari', 'qtpy', 'magicgui', 'PyQt6', 'PyQt5', 'PySide6')"
        " if m in sys.modules]; print(bad); raise SystemExit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readmes_test_command_in_a_new_venv():
    """.ci/run reads the command from README.md (no copy to drift) and builds its own venv."""
    found = _run("bash", ".ci/readme_command.sh", "Test it")
    assert found.returncode == 0, found.stderr
    command = found.stdout.strip()
    assert command.startswith("python -m pip install torch==") and "python -m pytest" in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'readme_command.sh "Test it"' in ci and "pytest" not in ci
    assert "python3 -m venv" in ci and "pip freeze" in ci
    run = _run("bash", ".ci/readme_command.sh", "Run it")
    assert run.returncode == 0 and run.stdout.strip().endswith("&& deq-explorer")
    assert _run("bash", ".ci/readme_command.sh", "No such section").returncode == 1
