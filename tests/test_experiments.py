"""Smoke tests: every experiment script runs end to end with ``--quick`` and writes its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {
    "cs_mri.py": ["cs_mri.md", "cs_mri.png"],
    "sr.py": ["sr.md"],
    "multitask.py": ["multitask.md", "multitask.png"],
    "mcnet.py": ["mcnet.md", "mcnet.png"],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_quick_run_writes_its_table(script: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in SCRIPTS[script]:
        assert (tmp_path / name).stat().st_size > 0, name
    table = (tmp_path / SCRIPTS[script][0]).read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) >= 3  # a header and results
    assert re.search(r"\d+\.\d\d", rows[-1])  # numbers, not placeholders
