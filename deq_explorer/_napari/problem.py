"""The Problem panel: ground truth + operator + noise -> a measurement (``api.simulate``)."""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image, Layer
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from deq_explorer import api
from deq_explorer._napari import _problems
from deq_explorer._napari._convert import layer_array, shown_slice, stack_array
from deq_explorer._napari._jobs import Simulated, problem_job
from deq_explorer._napari._runner import Failed, Runner
from deq_explorer._napari._widgets import ProgressBar, SpecPicker, device_choices, image_layers
from deq_explorer.images import Scaling, suggested_normalisation
from deq_explorer.registry import operators

if TYPE_CHECKING:
    import napari

__all__ = ["HINT", "ProblemPanel"]

#: the status of a viewer without an image (``napari -w deq-explorer``)
HINT = (
    "No image yet: open a sample (File ▸ Open Sample ▸ DEQ Explorer ▸ e.g. 'Problem: brain MRI "
    "at 10% radial', ready to reconstruct) or an image of your own (File ▸ Open File…), then "
    "Simulate."
)

#: the "normalise" choices: (label, method of ``images.normalise``)
NORMALISE = [("none", "none"), ("min–max", "minmax"), ("percentile 0.5–99.5", "percentile")]


class ProblemPanel(QWidget):
    """Pick a ground-truth layer, an operator, noise and seed; Simulate adds the
    measurement, the mask (MRI, inpainting) and the ``init(y)`` layers.

    The simulation runs in a worker thread (the GUI stays responsive, the button is
    disabled meanwhile); its layers are named after the problem (operator and image,
    ``y · deblur · camera``) and placed over the ground truth (a ×3 SR measurement at
    scale 3). With "the layer is a measurement", the chosen layer is taken as ``y`` for
    the operator (``api.from_measurement``) and no ground-truth metrics exist.

    Real data: "normalise" maps the layer's values to [0, 1] (percentile: the 0.5 and
    99.5 percentiles become 0 and 1; min–max; none: integers divided by their type's
    maximum, floats taken as they are and refused outside [0, 1]). Choosing a layer
    suggests a method: percentile for integers wider than 8 bits (12-bit data in uint16)
    and for floats outside [0, 1], none otherwise. The scaling is shown in the status and
    kept in the measurement's recipe (``"scaling"``: ``offset``, ``scale``; raw =
    x / scale + offset), which results carry along. "to gray" turns an RGB layer into
    gray; "crop to fit" crops the image to the size multiple the operator needs (×3 SR).

    Stacks and volumes: by default the slice napari shows is simulated; with "every
    slice" each image of the stack (:func:`~deq_explorer.stacks.simulate_stack`, image
    ``i`` with noise seed ``seed + i``, normalised as one) and the measurement and
    ``init(y)`` layers are stacks of the same leading shape, which Reconstruct solves
    image by image in batches.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = getattr(viewer, "__wrapped__", viewer)
        self.image = ComboBox(label="image", choices=lambda _: image_layers(self.viewer))
        self.operator = SpecPicker("operator", operators, "mri")
        self.noise = FloatSpinBox(label="noise σ", value=0.01, min=0.0, max=1.0, step=0.005)
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.mismatch = CheckBox(text="reconstruct with a different operator")
        self.solve_operator = SpecPicker("solve with", operators, "mri")
        self.solve_operator.visible = False
        self.is_measurement = CheckBox(text="the layer is a measurement (no ground truth)")
        self.normalise = ComboBox(label="normalise", choices=NORMALISE, value="none")
        self.normalise.tooltip = (
            "how the layer's values become [0, 1]; suggested per layer: percentile for "
            "integers beyond 8 bits and floats outside [0, 1], none otherwise"
        )
        self.gray = CheckBox(text="to gray (RGB layers)")
        self.crop = CheckBox(text="crop to fit (the size the operator needs, e.g. ×3 SR)")
        self.whole = CheckBox(
            text="every slice (a stack or volume), not only the one on screen",
            tooltip="simulate each image of the stack; Reconstruct then solves them all, in "
            "batches, into a result stack of the same shape",
        )  # fmt: skip
        self.whole.visible = False
        self.device = ComboBox(label="device", choices=device_choices())
        self.simulate_button = PushButton(text="Simulate")
        self.form = Container(
            widgets=[
                self.image,
                self.operator,
                self.noise,
                self.seed,
                self.mismatch,
                self.solve_operator,
                self.is_measurement,
                self.normalise,
                self.gray,
                self.crop,
                self.whole,
                self.device,
                self.simulate_button,
            ]
        )
        self.progress = ProgressBar()
        self.progress.setRange(0, 0)  # busy: a simulation is one call, without steps
        self.progress.setVisible(False)
        self.status = QLabel(HINT if not image_layers(self.viewer) else "")
        self.status.setWordWrap(True)
        self.mismatch.changed.connect(lambda on: setattr(self.solve_operator, "visible", on))
        self.is_measurement.changed.connect(self._measurement_mode)
        self.simulate_button.changed.connect(self.simulate)
        self.image.changed.connect(self._suggest_normalisation)
        self._suggest_normalisation(self.image.value)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.runner = Runner(self, self._on_result, self._on_done)
        self.measurement: Image | None = None  # the last measurement layer added
        self._made: api.Problem | None = None
        self._queue: list[Any] = []  # the layers of the problem just made, still to add
        self._next = QTimer(self)
        self._next.setSingleShot(True)
        self._next.setInterval(0)
        self._next.timeout.connect(self._add_next)

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer and registry choices (napari calls this on layer changes)."""
        self.form.reset_choices()
        empty = not image_layers(self.viewer)
        if empty or self.status.text() == HINT:
            self.status.setText(HINT if empty else "")

    def _suggest_normalisation(self, layer: Layer | None) -> None:
        self.whole.visible = isinstance(layer, Image) and _leading(layer) > 0
        if isinstance(layer, Image):
            try:
                self.normalise.value = suggested_normalisation(layer.data)
            except ValueError:  # not numbers: Simulate says so
                pass

    def _measurement_mode(self, on: bool) -> None:
        for w in (self.noise, self.seed, self.mismatch, self.crop):
            w.enabled = not on
        self.simulate_button.text = "Use as measurement" if on else "Simulate"

    def _set_running(self, running: bool) -> None:
        self.simulate_button.enabled = not running
        self.progress.setVisible(running)

    def simulate(self, *_: Any) -> bool:
        """Start making the problem in the background; returns whether it started.

        Its layers are added when it is made (:attr:`measurement` is then the new
        measurement layer); an error is shown, and no layer is touched.
        """
        if self.busy:
            return False
        layer = self.image.value
        if layer is None:
            show_error("Simulate: no image layer. Open a sample (File ▸ Open Sample) or an image.")
            return False
        try:
            make, recipe = self._problem(layer)
        except ValueError as exc:
            message = _problems.panel_words(str(exc))
            show_error(f"Simulate: {message}")
            self.status.setText(f"not simulated: {message}")
            return False
        name = _problems.problem_name(recipe["operator"], layer.name, recipe["solve_operator"])
        placed = (tuple(layer.scale[-2:]), tuple(layer.translate[-2:]))
        lead = (tuple(layer.scale[:-2]), tuple(layer.translate[:-2])) if recipe.get("stack") else (
            (), ())  # fmt: skip
        measured = bool(recipe.get("measured"))
        images = f"{_count(layer)} images of " if recipe.get("stack") else ""
        self.status.setText(f"simulating {images}{name} …")
        self._set_running(True)
        self.runner.start(problem_job, make, recipe, name, placed, measured, lead)
        return True

    @property
    def busy(self) -> bool:
        """Whether a simulation runs or its layers are still being added."""
        return self.runner.running or bool(self._queue)

    def _on_result(self, batch: list[Any]) -> None:
        for message in batch:
            if isinstance(message, Failed):
                text = _problems.panel_words(message.message)
                show_error(f"Simulate: {text}")
                self.status.setText(f"not simulated: {text}")
            elif isinstance(message, Simulated):
                names = [kwargs["name"] for _, kwargs, _ in message.layers]
                names = _problems.unique_names(self.viewer.layers, names)
                self._made = message.problem
                self._queue = [
                    (data, {**kwargs, "name": name}, kind)
                    for (data, kwargs, kind), name in zip(message.layers, names, strict=True)
                ]

    def _on_done(self) -> None:
        self._add_next()

    def _add_next(self) -> None:
        """Add the next layer of the problem made, one per event-loop turn.

        napari takes ~0.2 s to add a large layer (its controls, its visual): one at a time,
        the window is never held for all of them at once.
        """
        if not self._queue:
            self._set_running(False)
            return
        layer = Layer.create(*self._queue.pop(0))
        if _problems.is_measurement(layer):  # before it is added: the panels look it up then
            _problems.attach(layer, self._made)
        self.viewer.add_layer(layer)
        if _problems.is_measurement(layer):
            self.measurement = layer
            self.viewer.layers.selection.active = layer
            recipe = _problems.recipe_of(layer)
            scaling = Scaling(**recipe["scaling"])
            self.status.setText(f"added {layer.name!r} · normalised {scaling.describe()}")
            show_info(f"Simulated {recipe['operator']} (noise σ = {recipe['noise']:g}).")
        self._next.start()

    def _problem(self, layer: Image) -> tuple[Any, dict[str, Any]]:
        """The core call that makes the problem (not made yet) and its recipe."""
        device = self.device.value
        if self.whole.value and _leading(layer) > 0:  # every image of the stack
            raw = stack_array(layer.data, layer.rgb, layer.name)
            where: dict[str, Any] = {"stack": True}
        else:  # a stack: the slice on screen
            index = shown_slice(layer, self.viewer.dims.point)
            raw = layer_array(layer.data, layer.rgb, layer.name, index)
            where = {"slice": list(index)}
        prepared = {
            "normalise": self.normalise.value,
            "gray": bool(self.gray.value and raw.shape[-3] == 3),
            "crop": bool(self.crop.value),
            **where,
        }
        if self.is_measurement.value:
            recipe = _problems.measurement_recipe(
                f"layer:{layer.name}", self.operator.spec, 0.0, 0, None, device
            )
            recipe.update(prepared, crop=False, measured=True)
            recipe["provenance"] = f"the layer {layer.name!r}, measured by {self.operator.spec}"
        else:
            solve_spec = self.solve_operator.spec if self.mismatch.value else None
            recipe = _problems.measurement_recipe(
                f"layer:{layer.name}",
                self.operator.spec,
                self.noise.value,
                self.seed.value,
                solve_spec,
                device,
            )
            recipe.update(prepared)
            recipe["provenance"] = f"{recipe['operator']} applied to {layer.name!r}"
        return partial(_problems.make_problem, raw, recipe, layer.name), recipe


def _leading(layer: Image) -> int:
    """How many leading axes (Z, T …) the layer has before its images."""
    return layer.ndim - (3 if layer.rgb else 2)


def _count(layer: Image) -> int:
    """How many images the layer's leading axes hold."""
    return math.prod(layer.data.shape[: _leading(layer)])
