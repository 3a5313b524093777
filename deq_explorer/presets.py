"""The solve settings of the experiments in EXPERIMENTS.md, one place for all who use them.

``experiments/*.py`` solve with these requests, and the GUI's experiment samples
(File ▸ Open Sample ▸ DEQ Explorer) carry them in their measurement layer, so that
pressing Run in the Reconstruct panel repeats the experiment's solve. Values an
experiment tunes on a grid are the ones its grid chose (EXPERIMENTS.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deq_explorer.api import Continuation, Request

__all__ = [
    "COMPLETION_90",
    "CS_MRI",
    "MCNET_SR2",
    "PRESETS",
    "SR_X3",
    "admm_continuation",
    "from_config",
    "options",
]

#: experiment 1 (CS-MRI): the DEQ prior in the solve it was trained in, SD-RED with Anderson
CS_MRI = Request(prior="deq-mri-radial10", solver="red-sd", accel="anderson:m=5", max_iter=100,
                 tol=1e-4)  # fmt: skip
#: experiment 2 (×3 SR, mismatched): PnP-PGM with Anderson
SR_X3 = Request(prior="deq-sr", solver="pnp-pgm", accel="anderson:m=5", max_iter=100, tol=1e-4)


def admm_continuation(prior: str, sigma: float, gamma: float) -> Request:
    """Experiment 3's solve: PnP-ADMM (``gamma``) with the denoiser's σ going from 0.2 down
    to ``sigma`` in 5 warm-started stages of 12 iterations (the second paper's reference ADMM)."""
    return Request(
        prior=f"{prior}:sigma={sigma:.6g}", solver=f"pnp-admm:gamma={gamma:.6g}", accel="none",
        max_iter=60, tol=0.0, continuation=Continuation(0.2, 5),
    )  # fmt: skip


#: experiment 3 (90 % completion): σ₀ = 0.01 and γ = 32, the grid's choice for the AWGN
#: prior, used unchanged for ``mtdeq``
COMPLETION_90 = admm_continuation("mtdeq", 0.01, 32.0)
#: experiment 4 (MCNet ×2): the layer in the solve it was trained in (mcnet-admm with its
#: learned β and ρ; ε from the noise, 0 here), with Anderson
MCNET_SR2 = Request(prior="mcnet-sr2", accel="anderson:m=5", max_iter=100, tol=1e-4)

#: by name, as the samples record them
PRESETS = {"cs-mri": CS_MRI, "sr-x3": SR_X3, "completion-90": COMPLETION_90,
           "mcnet-sr2": MCNET_SR2}  # fmt: skip


def options(request: Request) -> dict[str, Any]:
    """``request``'s solve settings as keyword options of :func:`deq_explorer.api.reconstruct`
    (all but the prior and the start)."""
    return {f.name: getattr(request, f.name) for f in dataclasses.fields(request)
            if f.name not in ("prior", "w")}  # fmt: skip


def from_config(config: dict[str, Any]) -> Request:
    """The :class:`~deq_explorer.api.Request` a :meth:`Request.config` dict describes."""
    fields = {f.name for f in dataclasses.fields(Request)} - {"w"}
    given = {k: v for k, v in config.items() if k in fields}
    continuation = given.pop("continuation", None)
    if isinstance(continuation, dict):
        continuation = Continuation(**continuation)
    return Request(**given, continuation=continuation)
