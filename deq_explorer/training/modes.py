"""The registry of training modes: ``TrainConfig.mode`` → a :class:`~.tasks.Task` class.

A mode is a ``Task`` subclass registered under its name; its class attributes
carry everything the package asks of a mode:

- ``arch``: the network trained when no base prior is given;
- ``role``: ``"denoiser"`` (the checkpoint registers as a prior and the GUI
  offers the mode) or ``"backbone"`` (a reconstruction network ``y ↦ x``);
- ``check(config)``: the mode's own recipe rules (raises ``ConfigError``).

The built-in modes are registered in :mod:`deq_explorer.training.tasks`; a pack
registers its own with ``modes.register("name", MyTask)``, and the recipe check,
``deq-explorer train --mode`` and the Train panel offer it from then on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from deq_explorer.registry import Registry

if TYPE_CHECKING:
    from deq_explorer.training.tasks import Task

__all__ = ["mode", "modes"]

modes: Registry[Task] = Registry("training mode")


def mode(name: str) -> type[Task]:
    """The ``Task`` class of the training mode ``name``.

    Raises
    ------
    SpecError
        ``name`` is not a registered mode (the message lists the known ones).
    """
    return cast("type[Task]", modes.get(name))
