"""Solvers as fixed-point maps, accelerators, the fixed-point core and its monitoring loop.

Importing this package registers the solvers (``pnp-pgm``, ``red-sd``,
``fb``, ``pnp-admm``, ``mcnet-admm``) and accelerators (``none``,
``nesterov``, ``anderson``).
"""

from deq_explorer.fixedpoint import proximal  # noqa: F401  (registers; listed first)

# isort: split
from deq_explorer.fixedpoint import accelerators, admm  # noqa: F401  (registers)
from deq_explorer.fixedpoint.base import (
    Accelerator,
    Criterion,
    FixedPointMap,
    Iterate,
    Solution,
    Status,
    StopRule,
)
from deq_explorer.fixedpoint.core import FixedPointResult, Step, fixed_point, steps
from deq_explorer.fixedpoint.loop import iterate, solve

__all__ = [
    "Accelerator",
    "Criterion",
    "FixedPointMap",
    "FixedPointResult",
    "Iterate",
    "Solution",
    "Status",
    "Step",
    "StopRule",
    "fixed_point",
    "iterate",
    "solve",
    "steps",
]
