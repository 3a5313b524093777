"""DEQ Explorer: plug-and-play and deep-equilibrium priors for imaging inverse problems.

Importing the package registers the built-in operators, priors, solvers and
accelerators; the napari front end lives in :mod:`deq_explorer._napari` and is
never imported from here.
"""

from deq_explorer import fixedpoint, operators, priors  # noqa: F401  (registers built-ins)

__version__ = "0.1.0"
