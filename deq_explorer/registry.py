"""Named registries of operators, priors, solvers and accelerators.

Every registry maps a stable name to a *factory*: a callable whose keyword-only
parameters (with defaults) are the entry's user-facing options; its other
parameters are *context* the caller supplies (shape, device, the operator a
solver works with ...). :meth:`Entry.schema` describes the options (type, default,
range, help: :mod:`deq_explorer.schema`). A *spec* string ``name:key=value,...``
selects an entry and sets some of its options, converted to their schema's types:
:meth:`Registry.build` reads specs at the CLI, GUI and TOML
edge, :meth:`Registry.create` builds from a name and typed options inside the
package, and :func:`format_spec` writes a spec back for metadata and display.
Other registries live with their kinds: network architectures in
:mod:`deq_explorer.priors.nets`, training modes in :mod:`deq_explorer.training.modes`.

Third-party packs register through the entry-point group
``deq_explorer.plugins``: each entry point names a callable taking no argument
that calls ``register`` on the registries below. Packs are loaded lazily the
first time any registry is queried; a pack that fails is reported by name (see
:func:`plugin_errors`) and whatever it registered is rolled back.
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from deq_explorer.errors import SpecError
from deq_explorer.scale import Scale
from deq_explorer.schema import Meta, Option, Range, read_options

if TYPE_CHECKING:  # types only: the registry stays the bottom layer at run time
    from deq_explorer.fixedpoint.base import Accelerator, FixedPointMap
    from deq_explorer.operators.base import LinearOperator
    from deq_explorer.priors.base import Prior

__all__ = [
    "ENTRY_POINT_GROUP",
    "Entry",
    "Meta",
    "Option",
    "Range",
    "Registry",
    "SpecError",
    "accelerators",
    "format_spec",
    "load_plugins",
    "operators",
    "parse_spec",
    "plugin_errors",
    "priors",
    "registering",
    "solvers",
]

ENTRY_POINT_GROUP = "deq_explorer.plugins"
T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name.

    Attributes
    ----------
    name : str
        The stable registry name.
    factory : callable
        Builds the object; its keyword parameters are the options.
    summary : str
        One line for listings and ``--help``.
    source : str
        ``"builtin"`` or the name of the plugin pack that registered it.
    metadata : dict
        Free-form facts (for checkpoints: architecture, recipe, metrics ...).
    """

    name: str
    factory: Callable[..., T]
    summary: str = ""
    source: str = "builtin"
    metadata: dict[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """Keyword options of the factory and their defaults (no context args)."""
        out = {}
        for p in inspect.signature(self.factory).parameters.values():
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty:
                out[p.name] = p.default
        return out

    def schema(self) -> tuple[Option, ...]:
        """The typed options (:mod:`deq_explorer.schema`): what specs, widgets and listings use.

        The options the entry's ``metadata["problem_defaults"]`` derives from the problem are
        marked ``derived``.
        """
        rule = self.metadata.get("problem_defaults")
        derived = frozenset(rule(Scale())) if callable(rule) else frozenset()
        return read_options(self.factory, derived)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:k=v,k2=v2"`` into ``("name", {"k": "v", "k2": "v2"})``."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"empty spec {spec!r}: expected 'name' or 'name:key=value,...'")
    name, _, rest = spec.strip().partition(":")
    params: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise SpecError(f"bad option {item!r} in {spec!r}: expected key=value")
        params[key.strip()] = value.strip()
    return name.strip(), params


def format_spec(name: str, options: dict[str, Any]) -> str:
    """The inverse of :func:`parse_spec`: ``("name", {"k": v})`` → ``"name:k=v"``."""
    if not options:
        return name
    return f"{name}:" + ",".join(f"{k}={_text(v)}" for k, v in options.items())


def _text(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


class Registry(Generic[T]):
    """Names → factories for one kind of object (``"operator"``, ``"prior"`` ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        _REGISTRIES.add(self)  # so that a failed or removed pack is rolled back here too

    # -- registration -----------------------------------------------------
    def register(
        self,
        name: str,
        factory: Callable[..., T] | None = None,
        *,
        summary: str = "",
        aliases: tuple[str, ...] = (),
        metadata: dict[str, Any] | None = None,
        replace: bool = False,
        source: str | None = None,
    ) -> Callable[..., Any]:
        """Register ``factory`` under ``name``; usable as a decorator.

        ``source`` defaults to the pack being loaded (``"builtin"`` outside one);
        a core module that may first be imported while a pack loads passes
        ``source="builtin"``.

        Raises
        ------
        ValueError
            If the name is taken (unless ``replace``) or the factory is not callable.
        """

        def add(f: Callable[..., T]) -> Callable[..., T]:
            # ValueError, not SpecError: a mistake in a pack's code, not in anyone's input
            if not callable(f):
                raise ValueError(f"{self.kind} {name!r}: factory {f!r} is not callable")
            if not name or not isinstance(name, str) or ":" in name or "," in name:
                raise ValueError(f"bad {self.kind} name {name!r}: no ':' or ',' allowed")
            if not replace and (name in self._entries or name in self._aliases):
                raise ValueError(f"{self.kind} {name!r} is already registered")
            doc = summary or (inspect.getdoc(f) or "").split("\n")[0]
            origin = source or _current_source[-1]
            self._entries[name] = Entry(name, f, doc, origin, dict(metadata or {}))
            for alias in aliases:
                self._aliases[alias] = name
            return f

        return add if factory is None else add(factory)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (and aliases pointing to it) if present."""
        self._entries.pop(name, None)
        for alias in [a for a, n in self._aliases.items() if n == name]:
            del self._aliases[alias]

    # -- lookup -------------------------------------------------------------
    def names(self) -> list[str]:
        """Registered names (aliases excluded), in registration order."""
        load_plugins()
        return list(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        """All entries, in registration order."""
        load_plugins()
        return iter(list(self._entries.values()))

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries or name in self._aliases

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name`` or an alias; unknown names list the known ones."""
        load_plugins()
        name = self._aliases.get(name, name)
        if name not in self._entries:
            known = ", ".join(self._entries) or "(none)"
            raise SpecError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
        return self._entries[name]

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``."""
        return self.entry(name).factory

    # -- building -----------------------------------------------------------
    def _check(self, entry: Entry[T], options: dict[str, Any], context: dict[str, Any]) -> None:
        """Refuse an option the entry does not take and a context key its factory does not.

        The one check behind :meth:`resolve`, :meth:`build` and :meth:`create`.
        """
        known = entry.options()
        params = inspect.signature(entry.factory).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        accepted = [
            k
            for k, p in params.items()
            if k not in known and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        for key in options:
            if key in context or key not in known:
                listed = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
                raise SpecError(
                    f"{self.kind} {entry.name!r} has no option {key!r}; options: {listed}"
                )
        for key in context:
            if key not in accepted and not takes_any:
                raise SpecError(
                    f"{self.kind} {entry.name!r} takes no argument {key!r}; context arguments: "
                    f"{', '.join(accepted) or 'none'}; options: {', '.join(known) or 'none'}"
                )

    def resolve(self, spec: str) -> str:
        """``spec`` with every option spelled out (its defaults filled in), checked.

        ``"red-sd"`` → ``"red-sd:gamma=0.6,tau=0.5"``: what a trained prior records,
        so a later change of a default cannot change the map it was trained in.
        """
        name, raw = parse_spec(spec)
        entry = self.entry(name)
        self._check(entry, raw, {})
        values = {**entry.options(), **raw}
        return format_spec(entry.name, {k: v for k, v in values.items() if v is not None})

    def _parse(
        self, spec: str, context: dict[str, Any] | None = None
    ) -> tuple[Entry[T], dict[str, Any]]:
        """The entry ``spec`` names and the options it sets, checked and typed."""
        name, raw = parse_spec(spec)
        entry = self.entry(name)
        self._check(entry, raw, context or {})
        options = {o.name: o for o in entry.schema()}
        where = f"{self.kind} {entry.name!r} option"
        params = {k: options[k].parse(v, f"{where} {k!r}") for k, v in raw.items()}
        return entry, params

    def options_of(self, spec: str) -> tuple[Entry[T], dict[str, Any]]:
        """The entry ``spec`` names and the values of all its options (defaults filled in)."""
        entry, params = self._parse(spec)
        return entry, {**entry.options(), **params}

    def build(self, spec: str, **context: Any) -> T:
        """Build the object a spec string describes (the CLI, GUI and TOML edge).

        Parameters
        ----------
        spec : str
            ``name`` or ``name:key=value,...``.
        **context
            Arguments supplied by the caller, not the user (image shape,
            device, the operator a solver works with ...). They are passed
            through unchanged and cannot be set from the spec; a key the
            factory does not take is refused (:class:`SpecError`).
        """
        entry, params = self._parse(spec, context)
        return entry.factory(**context, **params)

    def create(self, name: str, **arguments: Any) -> T:
        """Build entry ``name`` from typed options and context, without a spec string.

        ``solvers.create("fb", op=op, prior=prior, y=y, eta=0.5)``: the factory's
        keyword-only options (here ``eta``) and its context arguments (``op``,
        ``prior``, ``y``) are given alike and checked as in :meth:`build`; values
        are passed as they are (no conversion).

        Raises
        ------
        SpecError
            Unknown name, or an argument that is neither an option nor context.
        """
        entry = self.entry(name)
        known = entry.options()
        options = {k: v for k, v in arguments.items() if k in known}
        context = {k: v for k, v in arguments.items() if k not in known}
        self._check(entry, options, context)
        return entry.factory(**arguments)


_REGISTRIES: weakref.WeakSet[Registry[Any]] = weakref.WeakSet()

operators: Registry[LinearOperator] = Registry("operator")
priors: Registry[Prior] = Registry("prior")
solvers: Registry[FixedPointMap] = Registry("solver")
accelerators: Registry[Accelerator] = Registry("accelerator")

_current_source: list[str] = ["builtin"]
_plugin_state: dict[str, Any] = {"loaded": False, "errors": {}}


def plugin_errors() -> dict[str, str]:
    """Plugin packs that failed to load: ``{pack name: error message}``."""
    load_plugins()
    return dict(_plugin_state["errors"])


def load_plugins(reload: bool = False) -> None:
    """Load every pack of the entry-point group ``deq_explorer.plugins`` once.

    A pack whose loading raises is reported (a warning naming it and
    :func:`plugin_errors`) and its registrations are rolled back; the others,
    and the built-ins, stay usable.
    """
    if _plugin_state["loaded"] and not reload:
        return
    _plugin_state["loaded"] = True
    if reload:
        for reg in list(_REGISTRIES):
            for name in [n for n, e in reg._entries.items() if e.source != "builtin"]:
                reg.unregister(name)
        _plugin_state["errors"] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            with registering(ep.name):
                hook = ep.load()
                if not callable(hook):
                    raise TypeError(f"entry point {ep.value!r} is not callable")
                hook()
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            _plugin_state["errors"][ep.name] = message
            warnings.warn(
                f"deq-explorer plugin pack {ep.name!r} failed to load and was skipped: {message}",
                RuntimeWarning,
                stacklevel=2,
            )


@contextmanager
def registering(source: str, *, keep: bool = True) -> Iterator[None]:
    """Attribute the registrations made inside the block to the pack ``source``.

    Every registry is put back as it was before the block if the block raises,
    and in any case unless ``keep`` (:func:`deq_explorer.testing.installed`). A
    registry first created inside the block loses what ``source`` registered in it.
    """
    saved = {reg: (dict(reg._entries), dict(reg._aliases)) for reg in _REGISTRIES}
    _current_source.append(source)
    try:
        yield
    except BaseException:
        keep = False
        raise
    finally:
        _current_source.pop()
        if not keep:
            for reg in list(_REGISTRIES):
                if reg in saved:
                    reg._entries, reg._aliases = saved[reg]
                else:
                    for name in [n for n, e in reg._entries.items() if e.source == source]:
                        reg.unregister(name)
