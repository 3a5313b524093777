"""Argument checks shared by the solver builders."""

from __future__ import annotations

import math

from torch import Tensor

from deq_explorer.operators.base import LinearOperator


def positive(solver: str, **values: float) -> None:
    """Raise ``ValueError`` unless every value is finite and > 0."""
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{solver}: option {name} must be a positive number; got {value!r}")


def start(op: LinearOperator, y: Tensor, w: Tensor | None, solver: str) -> Tensor:
    """Check ``y`` (and ``w``) against ``op``; return ``w`` or ``op.init(y)``, ``(B, C, H, W)``."""
    if not isinstance(y, Tensor) or tuple(y.shape[1:]) != tuple(op.y_shape):
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(
            f"{solver}: measurement has shape {got} but operator {op.name or type(op).__name__!r} "
            f"expects (B, *{tuple(op.y_shape)}); build the operator for this data's image shape"
        )
    if w is None:
        return op.init(y)
    expected = (y.shape[0], *op.x_shape)
    if not isinstance(w, Tensor) or tuple(w.shape) != expected:
        got = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise ValueError(f"{solver}: image w has shape {got}; expected {expected}")
    return w
