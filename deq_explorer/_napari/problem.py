"""The Problem panel: ground truth + operator + noise -> a measurement (``api.simulate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QVBoxLayout, QWidget

from deq_explorer import api
from deq_explorer._napari import _problems
from deq_explorer._napari._convert import from_layer_data, to_layer_data
from deq_explorer._napari._widgets import SpecPicker, device_choices, image_layers
from deq_explorer.registry import operators

if TYPE_CHECKING:
    import napari

__all__ = ["ProblemPanel"]


class ProblemPanel(QWidget):
    """Pick a ground-truth layer, an operator, noise and seed; Simulate adds the
    measurement, the mask (MRI) and the ``init(y)`` layers.

    With "the layer is a measurement", the chosen layer is taken as ``y`` for
    the operator (``api.from_measurement``) and no ground-truth metrics exist.
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
                self.device,
                self.simulate_button,
            ]
        )
        self.mismatch.changed.connect(lambda on: setattr(self.solve_operator, "visible", on))
        self.is_measurement.changed.connect(self._measurement_mode)
        self.simulate_button.changed.connect(self.simulate)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addStretch(1)

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer and registry choices (napari calls this on layer changes)."""
        self.form.reset_choices()

    def _measurement_mode(self, on: bool) -> None:
        for w in (self.noise, self.seed, self.mismatch):
            w.enabled = not on
        self.simulate_button.text = "Use as measurement" if on else "Simulate"

    def simulate(self, *_: Any) -> Image | None:
        """Build the problem (one core call) and add its layers; returns the measurement layer."""
        layer = self.image.value
        if layer is None:
            show_error("Simulate: no image layer. Open a sample (File ▸ Open Sample) or an image.")
            return None
        try:
            problem, recipe = self._problem(layer)
        except ValueError as exc:
            show_error(f"Simulate: {exc}")
            return None
        data, rgb = to_layer_data(_problems.display(problem.y[0]))
        recipe["provenance"] = f"{recipe['operator']} applied to {layer.name!r}"
        y_layer = self.viewer.add_image(
            data, rgb=rgb, name=f"y · {recipe['operator']}", metadata={_problems.KEY: recipe}
        )
        _problems.attach(y_layer, problem)
        mask = _problems.sampling_mask(problem.op)
        if mask is not None:
            self.viewer.add_image(
                mask,
                name="mask",
                colormap="gray",
                metadata={_problems.KEY: {"role": "mask", "operator": recipe["operator"]}},
            )
        x0 = problem.x_init().detach()[0].cpu().numpy()
        data, rgb = to_layer_data(x0)
        self.viewer.add_image(
            data,
            rgb=rgb,
            name="init(y)",
            contrast_limits=None if rgb else (0.0, 1.0),
            metadata={_problems.KEY: {"role": "init", "operator": recipe["operator"]}},
        )
        self.viewer.layers.selection.active = y_layer
        show_info(f"Simulated {recipe['operator']} (noise σ = {recipe['noise']:g}).")
        return y_layer

    def _problem(self, layer: Image) -> tuple[api.Problem, dict[str, Any]]:
        image = from_layer_data(layer.data, layer.rgb, layer.name)
        solve_spec = self.solve_operator.spec if self.mismatch.value else None
        if self.is_measurement.value:
            problem = api.from_measurement(image, self.operator.spec, device=self.device.value)
            recipe = _problems.measurement_recipe(
                f"layer:{layer.name}", self.operator.spec, 0.0, 0, None, self.device.value
            )
            recipe["measured"] = True
            return problem, recipe
        problem = api.simulate(
            image,
            self.operator.spec,
            noise=self.noise.value,
            seed=self.seed.value,
            solve_operator=solve_spec,
            device=self.device.value,
        )
        recipe = _problems.measurement_recipe(
            f"layer:{layer.name}",
            self.operator.spec,
            self.noise.value,
            self.seed.value,
            solve_spec,
            self.device.value,
        )
        return problem, recipe
