"""Deep-equilibrium layer and its backward rules (implicit, Jacobian-free, unrolled)."""

from deq_explorer.deq.layer import (
    DEQ,
    Backward,
    DEQStats,
    Forward,
    Implicit,
    JacobianFree,
    Unrolled,
)
from deq_explorer.fixedpoint.core import (
    FixedPointResult,
    fixed_point,
    mse_residual,
    relative_residual,
)

__all__ = [
    "DEQ",
    "Backward",
    "DEQStats",
    "FixedPointResult",
    "Forward",
    "Implicit",
    "JacobianFree",
    "Unrolled",
    "fixed_point",
    "mse_residual",
    "relative_residual",
]
