"""Priors: the Denoiser/Prior contracts and the built-in priors (imported to register them)."""

from deq_explorer.priors import (
    classical,  # noqa: F401
    neural,  # noqa: F401
)
