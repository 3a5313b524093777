"""DEQ Explorer: plug-and-play and deep-equilibrium priors for imaging inverse problems.

Importing the package registers the built-in operators, priors, solvers and
accelerators; the napari front end lives in :mod:`deq_explorer._napari` and is
never imported from here.
"""

import os

# Idle OpenMP threads sleep instead of spinning: on small shared machines spinning threads
# starve the GUI thread and each other (BENCHMARKS.md). Read once, when torch loads OpenMP;
# set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from deq_explorer import fixedpoint, operators, priors  # noqa: F401  (registers built-ins)
from deq_explorer.errors import DEQExplorerError

__all__ = ["DEQExplorerError", "__version__"]

__version__ = "0.1.0"
