"""Small form pieces the panels share: registry spec pickers, layer choices, devices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from napari.layers import Image, Layer
from psygnal import Signal
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import QLabel, QProgressBar, QWidget

from deq_explorer import api
from deq_explorer._napari._fields import Field, Text, field
from deq_explorer.errors import SpecError
from deq_explorer.registry import Registry, accelerators, format_spec, parse_spec, solvers

__all__ = [
    "ProgressBar",
    "SolveForm",
    "SpecPicker",
    "device_choices",
    "events",
    "image_layers",
    "layer_by_name",
    "on_priors_changed",
    "shortcut",
]


class _Events:
    """Cross-panel news: panels subscribe, none imports another."""

    priors_changed = Signal()  # a prior was registered (e.g. by the Train panel)


events = _Events()


def on_priors_changed(native: Any, slot: Callable[..., Any]) -> None:
    """Call ``slot`` whenever a prior is registered, until the Qt widget ``native`` is destroyed.

    Panels come and go (docks are closed, tests build many viewers) while ``events``
    lives for the whole process: a slot left connected to a deleted widget would
    break the signal for every other panel.
    """
    events.priors_changed.connect(slot)
    native.destroyed.connect(lambda *_: events.priors_changed.disconnect(slot, missing_ok=True))


class _OnShow(QObject):
    """Calls ``slot`` each time ``widget`` is shown."""

    def __init__(self, widget: QWidget, slot: Callable[[], Any]) -> None:
        super().__init__(widget)
        self.slot = slot
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show:
            self.slot()
        return False


class SpecPicker(Container):
    """A registry name and one typed widget per option of its entry, read back as a spec.

    The option widgets (:mod:`._fields`), labelled under the name, are built from the
    entry's schema whenever the name changes and show its defaults. :attr:`spec` lists the
    options shown: all of them once a name is chosen, those :meth:`set_spec` was given (so
    that a spec reads back as it was written), and every option edited since. An option the
    entry derives from the problem (TV's weight from the noise level) starts "auto" and
    stays out of the spec, so that a solve derives it as the CLI does; a value sets it.
    """

    def __init__(
        self,
        label: str,
        registry: Registry[Any],
        value: str,
        exclude: tuple[str, ...] = (),
    ) -> None:
        self.registry = registry

        def names(_: Any = None) -> list[str]:
            return [n for n in registry.names() if n not in exclude]

        self.choice = ComboBox(choices=names, value=value if value in names() else None)
        self.option_box = Container(layout="vertical", labels=True)
        self.option_box.margins = (0, 0, 0, 0)
        self.fields: dict[str, Field] = {}
        self._listed: set[str] = set()  # the options the spec lists
        super().__init__(
            widgets=[self.choice, self.option_box], layout="vertical", labels=False, label=label
        )
        self.margins = (0, 0, 0, 0)
        self.choice.changed.connect(self._build)
        self._build(self.choice.value)
        self._label_filter = _OnShow(self.native, self._top_label)

    def _top_label(self) -> None:
        """In a labelled form, level the picker's label with the name, not the middle."""
        row = self.native.parentWidget()
        layout = row.layout() if row is not None else None
        first = layout.itemAt(0) if layout is not None and layout.count() > 1 else None
        label = first.widget() if first is not None else None
        if isinstance(label, QLabel):
            layout.setAlignment(label, Qt.AlignmentFlag.AlignTop)
            label.setMinimumHeight(self.choice.native.sizeHint().height())

    def _build(self, name: str | None) -> None:
        """One field per option of entry ``name``, at its defaults."""
        schema = self.registry.entry(name).schema() if name in self.registry else ()
        self.option_box.clear()
        self.fields = {o.name: field(o) for o in schema}
        for key, f in self.fields.items():
            f.widget.changed.connect(lambda *_, key=key: self._listed.add(key))
        self._listed = set(self.fields)
        self.option_box.extend(f.widget for f in self.fields.values())
        self.option_box.visible = bool(self.fields)

    @property
    def spec(self) -> str:
        """``name:key=value,...``: the listed options (see the class) but those left auto."""
        texts = {key: f.text() for key, f in self.fields.items() if key in self._listed}
        given = {key: text for key, text in texts.items() if text is not None}
        name = self.choice.value or ""
        return f"{name}:" + ",".join(f"{k}={v}" for k, v in given.items()) if given else name

    def set_spec(self, spec: str) -> None:
        """Show ``spec``, the options it leaves out at their defaults (or auto); list its own.

        A name not registered is ignored.

        Raises
        ------
        SpecError
            An option the entry does not take, or a value its widget cannot show.
        """
        name, given = parse_spec(spec)
        if name not in self.registry:
            return
        option = api.auto_option(spec)  # tuned later
        auto = set() if option is None else {option}
        rest = {k: v for k, v in given.items() if k not in auto}
        entry, values = self.registry.options_of(format_spec(name, rest))
        self.choice.value = entry.name  # a new name rebuilds the fields
        for key in auto:
            f = self.fields.get(key)
            if not (isinstance(f, Text) and f.takes_auto):
                raise SpecError(f"{self.registry.kind} option {key!r}: only a float option can "
                                f"be {api.AUTO!r}")  # fmt: skip
        for key, f in self.fields.items():
            if key in auto:
                f.widget.value = api.AUTO
            elif key in given:
                self.set_option(key, values[key])
            else:
                f.reset()
        self._listed = set(given)

    def set_option(self, key: str, value: Any) -> None:
        """Show ``value`` (typed) for option ``key``, which the spec then lists."""
        try:
            self.fields[key].show(value)
        except ValueError as exc:  # out of a spin box's range, not among the choices
            raise SpecError(f"{self.registry.kind} option {key!r}: {exc}") from None

    def refresh(self) -> None:
        """Re-read the registry's names (keeps the current choice when it still exists)."""
        self.choice.reset_choices()


class SolveForm:
    """The solver, accelerator, iteration budget and tolerance fields every solve panel shows.

    The panels place :attr:`widgets` in their own forms and read one request back.
    """

    def __init__(self) -> None:
        self.solver = SpecPicker("solver", solvers, "pnp-pgm")
        self.accel = SpecPicker("accelerator", accelerators, "none")
        self.max_iter = SpinBox(label="max iterations", value=100, min=1, max=100_000)
        self.tol = FloatSpinBox(label="tolerance", value=1e-4, min=0.0, max=1.0, step=1e-5)
        self.tol.tooltip = "stop when the criterion below falls under this value (0: never)"
        self.stop_on = ComboBox(
            label="stop on", choices=list(api.STOP_ON), value="residual",
            tooltip="residual: ‖T(z) − z‖/‖z‖, the fixed-point residual; change: the relative "
            "change between iterates (the same without an accelerator)",
        )  # fmt: skip

        self.continuation = CheckBox(
            text="σ continuation", value=False,
            tooltip="solve in warm-started stages, the denoiser's σ falling from 'from σ' to its "
            "own (priors with a sigma option; helps inpainting with PnP-ADMM)",
        )  # fmt: skip
        self.sigma_start = FloatSpinBox(label="from σ", value=0.2, min=1e-3, max=1.0, step=0.01)
        self.stages = SpinBox(label="stages", value=5, min=2, max=50)
        self.continuation.changed.connect(self._show_continuation)
        self._show_continuation(False)

    def _show_continuation(self, on: bool) -> None:
        self.sigma_start.visible = self.stages.visible = bool(on)

    @property
    def widgets(self) -> list[Any]:
        return [self.solver, self.accel, self.max_iter, self.tol, self.stop_on,
                self.continuation, self.sigma_start, self.stages]  # fmt: skip

    def request(self, prior: str, *, trained: bool = False, w: Any = None) -> api.Request:
        """The request for ``prior`` with the form's settings; with ``trained``, a learned
        prior's trained solver, accelerator and tolerance replace the form's."""
        form = {"solver": self.solver.spec, "accel": self.accel.spec, "tol": float(self.tol.value)}
        chosen = api.solve_settings(prior, fallback=form) if trained else form
        continuation = (
            api.Continuation(float(self.sigma_start.value), int(self.stages.value))
            if self.continuation.value else None
        )  # fmt: skip
        return api.Request(
            prior=prior, max_iter=int(self.max_iter.value), stop_on=self.stop_on.value, w=w,
            continuation=continuation, **chosen,
        )  # fmt: skip

    def use_request(self, request: api.Request) -> None:
        """Show ``request``'s solve settings (those it gives; None leaves a field as it is)."""
        if request.solver is not None:
            self.solver.set_spec(request.solver)
        if request.accel is not None:
            self.accel.set_spec(request.accel)
        if request.tol is not None:
            self.tol.value = request.tol
        self.max_iter.value = request.max_iter
        self.stop_on.value = request.stop_on
        self.continuation.value = request.continuation is not None
        if request.continuation is not None:
            self.sigma_start.value = request.continuation.start
            self.stages.value = request.continuation.stages

    def use_trained(self, prior: str) -> None:
        """Show the solver, accelerator and tolerance ``prior`` records from its training."""
        trained = api.trained_settings(prior)
        if "solver" in trained:
            self.solver.set_spec(trained["solver"])
        if "accel" in trained:
            self.accel.set_spec(trained["accel"])
        if "tol" in trained:
            self.tol.value = trained["tol"]


def shortcut(panel: Any, keys: str, slot: Callable[[], Any]) -> QShortcut:
    """``keys`` call ``slot`` while the focus is inside ``panel`` (so that two docked panels
    can use the same keys: the one being worked in answers)."""
    sc = QShortcut(QKeySequence(keys), panel)
    sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    sc.activated.connect(slot)
    return sc


class ProgressBar(QProgressBar):
    """A progress bar that repaints with the window's next update, not at once.

    ``QProgressBar.setValue`` repaints synchronously. With napari's OpenGL canvas
    in the window each such repaint composes the whole window (in software under
    Xvfb), holding the GIL that the solve's worker thread needs; deferred, it
    shares one composition with the layer and plot updates of the same turn.
    """

    def setValue(self, value: int) -> None:
        self.setUpdatesEnabled(False)  # repaint() becomes a no-op ...
        try:
            super().setValue(value)
        finally:
            self.setUpdatesEnabled(True)  # ... and this schedules an update()


def image_layers(viewer: Any, where: Callable[[Layer], bool] | None = None) -> list[Any]:
    """``(name, layer)`` choices of the viewer's image layers passing ``where``."""
    return [
        (layer.name, layer)
        for layer in viewer.layers
        if isinstance(layer, Image) and (where is None or where(layer))
    ]


class FollowNewest:
    """Keeps a layer combo box on the newest layer of its kind once one is added.

    Call it after the combo's choices are refreshed: when a layer appeared that was not
    there at the last call (a measurement just simulated), the combo selects it.
    """

    def __init__(self, combo: Any) -> None:
        self.combo = combo
        self.seen: set[int] = {id(layer) for layer in combo.choices if layer is not None}

    def __call__(self) -> None:
        layers = [layer for layer in self.combo.choices if layer is not None]
        new = [layer for layer in layers if id(layer) not in self.seen]
        self.seen = {id(layer) for layer in layers}
        if new:
            self.combo.value = new[-1]


def layer_by_name(viewer: Any, name: str) -> Layer | None:
    return viewer.layers[name] if name in viewer.layers else None


def device_choices() -> list[tuple[str, str]]:
    """Device choices with what they resolve to on this machine."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    out = [(f"auto ({'GPU: ' + gpu if gpu else 'CPU'})", "auto"), ("cpu", "cpu")]
    if gpu:
        out.append((f"cuda ({gpu})", "cuda"))
    return out
