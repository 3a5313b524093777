"""What images an operator takes, declared in its registry entry."""

from __future__ import annotations

from dataclasses import dataclass

from deq_explorer.operators.base import OperatorError
from deq_explorer.registry import operators

__all__ = ["ImageNeeds", "image_needs"]


@dataclass(frozen=True)
class ImageNeeds:
    """The images an operator accepts.

    An operator declares them in its registry entry, ``metadata={"needs": n}``, where
    ``n`` is an ``ImageNeeds`` or a function of the entry's options returning one (the
    SR factor is an option). The API crops to ``multiple`` and refuses other channel
    counts; the contract tests (:mod:`deq_explorer.testing`) run at ``example``.

    Attributes
    ----------
    multiple : int
        ``H`` and ``W`` must be multiples of it; for an operator that downsamples,
        the factor from the image to the measurement.
    channels : int or None
        The number of channels it takes (1: gray images only); ``None``: any.
    example : (C, H, W)
        A small shape it accepts, odd where it can be.
    """

    multiple: int = 1
    channels: int | None = None
    example: tuple[int, int, int] = (2, 37, 31)

    def check_channels(self, shape: tuple[int, ...], spec: str) -> None:
        """Raise :class:`OperatorError` unless images of ``shape`` have the channels needed."""
        if self.channels is None or shape[0] == self.channels:
            return
        if self.channels == 1:
            raise OperatorError(
                f"operator {spec!r} takes single-channel images, got {shape[0]} channels: "
                "convert the image to gray (--gray on the CLI, deq_explorer.images.to_gray "
                "in Python)"
            )
        raise OperatorError(
            f"operator {spec!r} takes {self.channels}-channel images, got {shape[0]} channels"
        )


def image_needs(spec: str) -> ImageNeeds:
    """The images the operator ``spec`` takes, at the spec's options."""
    entry, options = operators.options_of(spec)
    needs = entry.metadata.get("needs", ImageNeeds())
    return needs(**options) if callable(needs) else needs
