"""Strict JSON at the package's edges (CLI output, ``--out`` configs): JSON has no NaN."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "strict"]


def strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (nested dicts and lists)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """:func:`json.dumps` of :func:`strict` ``(value)``; refuses anything else non-JSON."""
    return json.dumps(strict(value), allow_nan=False)
