"""Small form pieces the panels share: registry spec pickers, layer choices, devices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from napari.layers import Image, Layer
from psygnal import Signal
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import QProgressBar, QSizePolicy, QStyle, QStyleOptionFrame

from deq_explorer import api
from deq_explorer.registry import Registry, accelerators, solvers

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

OPTIONS_HELP = "options as key=value,key=value (defaults filled in)"
_OPTIONS_MAX_PX = 420  # wider options scroll in the field; the tooltip shows them all


def on_priors_changed(native: Any, slot: Callable[..., Any]) -> None:
    """Call ``slot`` whenever a prior is registered, until the Qt widget ``native`` is destroyed.

    Panels come and go (docks are closed, tests build many viewers) while ``events``
    lives for the whole process: a slot left connected to a deleted widget would
    break the signal for every other panel.
    """
    events.priors_changed.connect(slot)
    native.destroyed.connect(lambda *_: events.priors_changed.disconnect(slot, missing_ok=True))


def options_text(registry: Registry[Any], name: str) -> str:
    """Default options of entry ``name`` as ``key=value,...`` (empty if none).

    Options the entry derives from the problem (``metadata["problem_defaults"]``, e.g. TV's
    weight from the noise level) are left out, so that a solve derives them as the CLI does;
    typing ``weight=…`` in the field still sets one.
    """
    try:
        entry = registry.entry(name)
    except ValueError:
        return ""
    derived = api.derived_options(registry, name)
    return ",".join(f"{k}={v}" for k, v in entry.options().items() if k not in derived)


class SpecPicker(Container):
    """A registry name plus its options, read back as a spec ``name:key=value,...``.

    The options field is filled with the entry's defaults whenever the name
    changes; the user edits them in place.
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
        self.params = LineEdit(value=options_text(registry, self.choice.value or ""))
        self.params.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        super().__init__(widgets=[self.choice, self.params], layout="horizontal", label=label)
        self.margins = (0, 0, 0, 0)
        self.choice.changed.connect(self._defaults)
        self.params.changed.connect(self._fit)
        self._fit()

    def _fit(self, *_: Any) -> None:
        """Make the options field wide enough to read them (up to a limit); tooltip: all."""
        edit, text = self.params.native, self.params.value
        option = QStyleOptionFrame()
        edit.initStyleOption(option)
        inner = QSize(edit.fontMetrics().horizontalAdvance(text or "key=value") + 8, 0)
        width = edit.style().sizeFromContents(QStyle.ContentsType.CT_LineEdit, option, inner, edit)
        edit.setMinimumWidth(min(width.width(), _OPTIONS_MAX_PX))
        self.params.tooltip = f"{text}\n{OPTIONS_HELP}" if text else OPTIONS_HELP

    def _defaults(self, name: str | None) -> None:
        self.params.value = options_text(self.registry, name or "")

    @property
    def spec(self) -> str:
        name, opts = self.choice.value or "", self.params.value.strip().strip(",")
        return f"{name}:{opts}" if opts else name

    def set_spec(self, spec: str) -> None:
        """Show ``spec`` (``name:key=value,...``); a name not registered is ignored."""
        name, _, opts = spec.partition(":")
        if name not in self.registry:
            return
        self.choice.value = name
        self.params.value = opts

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
