"""Neural priors: only trained checkpoints become priors.

No network is registered with placeholder weights. Training builds networks
from :mod:`deq_explorer.priors.nets` (``build_net``); finished checkpoints
become priors through :func:`~deq_explorer.priors.checkpoint.register_checkpoint`,
and the checkpoints shipped in ``deq_explorer/priors/shipped/`` are
registered here, at import, under their names.
"""

from __future__ import annotations

from deq_explorer.priors.checkpoint import register_shipped

__all__ = ["SHIPPED"]

SHIPPED: list[str] = register_shipped()
"""Names of the shipped priors registered at import."""
