"""Argument checks shared by the solver builders."""

from __future__ import annotations

from torch import Tensor

from deq_explorer.errors import SolverError
from deq_explorer.operators.base import LinearOperator


def start(op: LinearOperator, y: Tensor, w: Tensor | None, solver: str) -> Tensor:
    """Check ``y`` (and ``w``) against ``op``; return ``w`` or ``op.init(y)``, ``(B, C, H, W)``."""
    if not isinstance(y, Tensor) or tuple(y.shape[1:]) != tuple(op.y_shape):
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise SolverError(
            f"{solver}: measurement has shape {got} but operator {op.name or type(op).__name__!r} "
            f"expects (B, *{tuple(op.y_shape)}); build the operator for this data's image shape"
        )
    if w is None:
        return op.init(y)
    expected = (y.shape[0], *op.x_shape)
    if not isinstance(w, Tensor) or tuple(w.shape) != expected:
        got = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise SolverError(f"{solver}: image w has shape {got}; expected {expected}")
    return w
