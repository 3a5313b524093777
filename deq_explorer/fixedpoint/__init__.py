"""Solvers as fixed-point maps, accelerators, and the iteration loop.

Importing this package registers the solvers (``pnp-pgm``, ``red-sd``,
``fb``, ``pnp-admm``, ``mcnet-admm``) and accelerators (``none``,
``nesterov``, ``anderson``).
"""

from deq_explorer.fixedpoint import proximal  # noqa: F401  (registers; listed first)

# isort: split
from deq_explorer.fixedpoint import accelerators, admm  # noqa: F401  (registers)
from deq_explorer.fixedpoint.base import (
    Accelerator,
    FixedPointMap,
    Iterate,
    Solution,
    Status,
    StopRule,
)
from deq_explorer.fixedpoint.loop import iterate, solve

__all__ = [
    "Accelerator",
    "FixedPointMap",
    "Iterate",
    "Solution",
    "Status",
    "StopRule",
    "iterate",
    "solve",
]
