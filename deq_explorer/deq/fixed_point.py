"""Deprecated location: the fixed-point loop lives in :mod:`deq_explorer.fixedpoint.core`."""

from deq_explorer.fixedpoint.core import (  # noqa: F401 - re-exported for old imports
    FixedPointResult,
    Residual,
    fixed_point,
    mse_residual,
    relative_residual,
)

__all__ = ["FixedPointResult", "fixed_point", "mse_residual", "relative_residual"]
