"""The typed options of a registry entry, read from its factory's signature.

An entry's options are its factory's keyword-only parameters with defaults. Each becomes an
:class:`Option`: its type is the annotation (else the default's type): ``bool``, ``int``,
``float``, ``str``, a ``typing.Literal`` of choices, or one of these ``| None``. The facts a
type cannot say, a one-line help text and the range of numbers the factory accepts, go in a
:class:`Meta` inside ``typing.Annotated``::

    sigma: Annotated[float, Meta("blur std in pixels", "[0, inf)")] = 1.6

The schema is what a spec string's values are converted with (:meth:`Option.parse`), what the
GUI builds one widget per option from and what the CLI's listings show. The factory still
checks the values it gets: a range and choices describe them, they do not enforce them.
An entry without any of this still gets a schema from its types and defaults alone.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from deq_explorer.errors import SpecError

__all__ = ["Meta", "Option", "Range", "read_options"]

_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]*)\s*,\s*([^,\s]*)\s*([\])])\s*$")
_SIMPLE = (bool, int, float, str)


@dataclass(frozen=True)
class Range:
    """An interval of numbers, written ``"(0, 1]"``, ``"[0, inf)"`` ...; open ends exclude."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    @classmethod
    def parse(cls, text: str) -> Range:
        """``"(0, 1]"`` → ``Range(0, 1, low_open=True)``; ``inf``/``-inf`` for no bound.

        Raises
        ------
        ValueError
            Not an interval (a mistake in a factory's annotation, found when it is read).
        """
        found = _INTERVAL.match(text)
        try:
            if not found:
                raise ValueError
            low, high = float(found[2] or "-inf"), float(found[3] or "inf")
        except ValueError:
            raise ValueError(f"bad range {text!r}: expected an interval like '(0, 1]'") from None
        if not low <= high:
            raise ValueError(f"bad range {text!r}: its low end is above its high end")
        return cls(low, high, found[1] == "(", found[4] == ")")

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        def end(v: float) -> str:
            return "∞" if v == math.inf else "-∞" if v == -math.inf else f"{v:g}"

        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{left}{end(self.low)}, {end(self.high)}{right}"


@dataclass(frozen=True)
class Meta:
    """What ``Annotated[T, Meta(help, range)]`` adds to an option's type.

    Attributes
    ----------
    help : str
        One short line: what the option is (listings, the GUI's tooltips).
    range : str
        The numbers the factory accepts, as an interval (``"(0, 1]"``); empty: any.
    """

    help: str = ""
    range: str = ""

    def __post_init__(self) -> None:
        if self.range:
            Range.parse(self.range)  # a bad interval fails where the factory is defined


@dataclass(frozen=True)
class Option:
    """One option of an entry: what a spec sets, a widget shows and a listing describes.

    Attributes
    ----------
    name : str
        The keyword.
    type : type
        ``bool``, ``int``, ``float`` or ``str`` (the choices' type for a ``Literal``); another
        annotation's values stay the spec's text.
    default : Any
        The factory's default.
    help : str
        One line, from the option's :class:`Meta` (empty without one).
    range : Range or None
        The numbers accepted, from the :class:`Meta`.
    choices : tuple
        The values of a ``Literal`` type; empty for any value of :attr:`type`.
    optional : bool
        None is a value (``X | None``, or a default of None); a spec writes it ``none``.
    derived : bool
        The entry derives it from the problem when a spec leaves it out (TV's weight from
        the noise level, the entry's ``metadata["problem_defaults"]``).
    """

    name: str
    type: type
    default: Any
    help: str = ""
    range: Range | None = None
    choices: tuple[Any, ...] = ()
    optional: bool = False
    derived: bool = False

    @property
    def type_name(self) -> str:
        """``"float"``, ``"int | None"`` ...: the type as a listing shows it."""
        name = getattr(self.type, "__name__", str(self.type))
        return f"{name} | None" if self.optional else name

    def parse(self, text: str, where: str = "") -> Any:
        """The value a spec's ``text`` gives this option, converted to :attr:`type`.

        Raises
        ------
        SpecError
            The text is not a value of the type (``where`` names the entry in the message).
        """
        if self.optional and text.strip().lower() == "none":
            return None
        try:
            if self.type is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if self.type in (int, float):
                return self.type(text)
        except ValueError:
            place = where or f"option {self.name!r}"
            raise SpecError(f"{place}: cannot read {text!r} as {self.type.__name__}") from None
        return text

    def format(self, value: Any) -> str:
        """The spec text of ``value``, read back exactly by :meth:`parse`."""
        if value is None:
            return "none"
        if isinstance(value, bool):
            return str(value).lower()
        return repr(value) if isinstance(value, float) else str(value)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` lies in the option's range and choices (None if optional)."""
        if value is None:
            return self.optional
        if self.choices and value not in self.choices:
            return False
        return self.range is None or value in self.range

    def describe(self) -> dict[str, Any]:
        """The option as JSON: name, type, default, range, choices, help, optional, derived."""
        return {
            "name": self.name,
            "type": self.type_name,
            "default": self.default,
            "range": str(self.range) if self.range else None,
            "choices": list(self.choices),
            "help": self.help,
            "optional": self.optional,
            "derived": self.derived,
        }


def read_options(
    factory: Callable[..., Any], derived: frozenset[str] = frozenset()
) -> tuple[Option, ...]:
    """The options of ``factory``: its keyword-only parameters with defaults, in order.

    ``derived`` names the options the entry derives from the problem when left out.
    """
    hints = _hints(factory)
    out = []
    for p in inspect.signature(factory).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.default is not p.empty:
            hint = hints.get(p.name, p.annotation)
            out.append(_option(p.name, p.default, hint, p.name in derived))
    return tuple(out)


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's annotations, resolved; one that does not resolve is left out."""
    try:
        return typing.get_type_hints(factory, include_extras=True)
    except Exception:  # e.g. a context type imported under TYPE_CHECKING: the others one by one
        pass
    target = inspect.unwrap(factory)
    owners = reversed(target.__mro__) if isinstance(target, type) else [target]
    hints = {}
    for owner in owners:
        module = sys.modules.get(owner.__module__)
        space = getattr(owner, "__globals__", None) or (vars(module) if module else {})
        for name, annotation in inspect.get_annotations(owner).items():
            try:
                hints[name] = eval(annotation, space) if isinstance(annotation, str) else annotation
            except Exception:
                continue
    return hints


def _option(name: str, default: Any, hint: Any, derived: bool) -> Option:
    meta = Meta()
    optional = default is None
    for _ in range(2):  # Annotated[T | None, Meta] and Annotated[T, Meta] | None alike
        if typing.get_origin(hint) is Annotated:
            hint, *extras = typing.get_args(hint)
            meta = next((e for e in extras if isinstance(e, Meta)), meta)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = typing.get_args(hint)
            optional = optional or type(None) in args
            hint = next((a for a in args if a is not type(None)), str)
    if isinstance(hint, str):  # an annotation left unresolved: the built-in types by name
        hint = {t.__name__: t for t in _SIMPLE}.get(hint, hint)
    choices: tuple[Any, ...] = ()
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        hint = type(choices[0])
    if hint not in _SIMPLE:  # no annotation, a string one that did not resolve, or another type
        hint = type(default) if type(default) in _SIMPLE else str
    kind = typing.cast(type, hint)
    span = Range.parse(meta.range) if meta.range else None
    return Option(name, kind, default, meta.help, span, choices, optional, derived)
