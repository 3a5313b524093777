"""The committed sample measurements (``sample_data/`` at the repository root; README.md here)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FOLDER", "sample_path"]

FOLDER = Path(__file__).resolve().parent


def sample_path(name: str) -> Path:
    """The path of sample file ``name``; ``FileNotFoundError`` names the files there are."""
    path = FOLDER / name
    if not path.is_file() or path.name != name:
        there = sorted(p.name for p in FOLDER.iterdir() if p.suffix in (".npz", ".gz"))
        raise FileNotFoundError(f"no sample file {name!r}; sample_data holds {', '.join(there)}")
    return path
