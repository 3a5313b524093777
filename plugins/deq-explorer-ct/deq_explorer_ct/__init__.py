"""DEQ Explorer CT pack: the parallel-beam CT operator ``ct``.

Installing this distribution registers ``ct`` in
``deq_explorer.registry.operators`` through the entry-point group
``deq_explorer.plugins`` (see :func:`register`). Use it like any operator:
``operators.build("ct:angles=30", shape=(1, 128, 128))`` or
``--operator ct:preset=limited-angle`` on the command line.
"""

from deq_explorer.registry import operators
from deq_explorer_ct.cg import CG, conjugate_gradient
from deq_explorer_ct.radon import Geometry, parallel_beam
from deq_explorer_ct.tomography import CT, PRESETS, ct

__all__ = [
    "CG",
    "CT",
    "PRESETS",
    "Geometry",
    "conjugate_gradient",
    "ct",
    "parallel_beam",
    "register",
]


def register() -> None:
    """Entry point of the pack: register the ``ct`` operator."""
    operators.register("ct", ct)
