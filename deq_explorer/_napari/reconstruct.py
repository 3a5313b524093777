"""The Reconstruct panel: one solve, streamed live into layers and a dock plot."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from deq_explorer import api, presets
from deq_explorer._napari import _problems, _view
from deq_explorer._napari._convert import from_layer_data, to_layer_data
from deq_explorer._napari._jobs import Frame, StackFrame, solve_job, stack_job
from deq_explorer._napari._plot import Axis, CurvePlot
from deq_explorer._napari._run import Run, StackPolicy, StackRun, history_of, takes_start
from deq_explorer._napari._runner import Failed, Runner
from deq_explorer._napari._widgets import (
    FollowNewest,
    ProgressBar,
    SolveForm,
    SpecPicker,
    image_layers,
    on_priors_changed,
    shortcut,
)
from deq_explorer.errors import LayerError
from deq_explorer.priors.checkpoint import register_checkpoint, register_user_priors
from deq_explorer.registry import priors
from deq_explorer.stacks import Stack
from deq_explorer.tuning import Candidate, Tuning

if TYPE_CHECKING:
    import napari

__all__ = ["CURVES", "ReconstructPanel", "history_of"]

#: the curves of a solve: history key, label, log scale
CURVES = (
    Axis(key="residual", label="rel. residual", log=True),
    Axis(key="psnr", label="PSNR [dB]"),
    Axis(key="consistency", label="‖Ax−y‖/‖y‖", log=True),
)
CHANGE, ERROR, STACK = "|x_k − x_k−1|", "|x_k − x*|", "iterates"
_PLOT_EVERY_S = 0.5  # redraw the curves at most twice a second while running
_MAPS_EVERY_S = 0.5  # and the change/error maps (the result layer follows every batch)
_GAP = 8  # pixels between the result, change and error layers


class ReconstructPanel(QWidget):
    """Prior, solver, accelerator, budget; Run / Pause / Stop with live layers and curves.

    Every run gets its own result layer, named by prior and problem
    (``tv · mri:rate=0.3 · brain``, a counter only when needed) and updated in place
    while the solve runs (contrast limits fixed to [0, 1]); earlier results stay.
    To its right the live per-pixel change
    ``|x_k − x_{k−1}|`` and, when the ground truth is known, the error map
    ``|x_k − x*|``.
    The curves plot relative residual, PSNR and consistency against iteration.
    With "record iterates", every k-th iterate goes into an ``iterates`` stack
    layer (capped by a memory budget) and the plot marks the iteration shown
    by napari's slider; napari's Left/Right arrow keys step through it (the slider
    napari's arrows move is set to the iteration axis). The final layer's metadata holds
    the configuration, status, metrics and history.

    A stack measurement (the Problem panel's "every slice") solves every image, a batch
    of images at a time (:func:`~deq_explorer.stacks.run_stack`, the batch from the free
    memory) in the worker; the result is a stack of the measurement's leading shape,
    filled in as batches advance, the plot follows the current batch and ends with each
    image's PSNR; the metadata holds each image's status, iterations, PSNR and SSIM.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = getattr(viewer, "__wrapped__", viewer)
        self.measurement = ComboBox(
            label="measurement",
            choices=lambda _: image_layers(self.viewer, _problems.is_measurement),
        )
        self._follow = FollowNewest(self.measurement)
        self._preset_of: Any = None  # the measurement whose preset the form last took
        register_user_priors()  # the priors trained in earlier sessions
        self.prior = SpecPicker("prior", priors, "tv")
        self.checkpoint = FileEdit(
            label="load prior", mode="r", filter="*.safetensors *.pt", value=""
        )
        self.checkpoint.tooltip = "a trained checkpoint (.safetensors, .pt) to add as a prior"
        self.solve_form = SolveForm()
        self.solver, self.accel = self.solve_form.solver, self.solve_form.accel
        self.max_iter, self.tol = self.solve_form.max_iter, self.solve_form.tol
        self.w_layer = ComboBox(
            label="backbone w",
            choices=lambda _: [("init(y) (default)", None), *image_layers(self.viewer)],
            tooltip="MCNet: the backbone output the consistency layer starts from",
        )
        self.warm = CheckBox(
            text="start from the last result", value=True,
            tooltip="a run on the same measurement starts from the previous run's result (warm "
            "start: fewer iterations after changing a setting); off: from init(y)",
        )  # fmt: skip
        self.record = CheckBox(
            text="record iterates into a stack",
            tooltip="every k-th iterate into an 'iterates' layer (single images, not stacks); "
            "napari's slider, or the Left/Right arrow keys over the canvas, step through them",
        )  # fmt: skip
        self.every = SpinBox(label="every k-th", value=1, min=1, max=10_000)
        self.budget = SpinBox(label="budget [MB]", value=256, min=1, max=65_536)
        self.budget_info = Label(value="")
        self.device = Label(label="device", value="")
        self.form = Container(
            widgets=[
                self.measurement,
                self.device,
                self.prior,
                self.checkpoint,
                self.solver,
                self.accel,
                self.w_layer,
                self.max_iter,
                self.tol,
                self.solve_form.stop_on,
                self.solve_form.continuation,
                self.solve_form.sigma_start,
                self.solve_form.stages,
                self.warm,
                self.record,
                self.every,
                self.budget,
                self.budget_info,
            ]
        )
        self.run_button = QPushButton("Run")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.save_button = QPushButton("Save run…")
        self.save_button.setToolTip(
            "write x, y, init(y), the reference, the history and the settings to an .npz "
            "(the format of the CLI's --out); File ▸ Open reopens it with its curves"
        )
        self.progress = ProgressBar()
        self.status = QLabel("ready")
        self.status.setWordWrap(True)
        self.plot = CurvePlot(CURVES, theme=self.viewer.theme)
        buttons = QHBoxLayout()
        for b in (self.run_button, self.pause_button, self.stop_button, self.save_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 1)

        self.runner = Runner(self, self._on_frames, self._on_done, interval_ms=250)
        self.model: Run | None = None  # the current or last run
        self.result: Image | None = None  # its result layer
        self._maps_due: Frame | None = None  # the frame whose change/error maps are queued
        self._maps_shown = 0.0
        self._plotted = 0.0

        self.run_button.clicked.connect(self.run)
        self.shortcuts = [
            shortcut(self, "Ctrl+Return", self.run),
            shortcut(self, "Escape", self.stop),
        ]
        self.run_button.setToolTip("Ctrl+Return while the panel has the focus")
        self.stop_button.setToolTip("Escape while the panel has the focus")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(lambda: self.save_run())
        self.viewer.layers.selection.events.active.connect(self._plot_selected)
        self.solver.choice.changed.connect(self._solver_changed)
        self.checkpoint.changed.connect(lambda path: self.load_checkpoint(str(path)))
        for w in (self.record, self.every, self.budget, self.max_iter, self.measurement):
            w.changed.connect(self._update_budget)
        self.viewer.dims.events.current_step.connect(self._follow_slider)
        self.viewer.events.theme.connect(lambda e: self.plot.apply_theme(self.viewer.theme))
        on_priors_changed(self, self.prior.refresh)
        self.prior.choice.changed.connect(self._use_trained_settings)
        self.measurement.changed.connect(self._use_preset)
        self._solver_changed(self.solver.choice.value)
        self._set_running(False)
        self._update_budget()

    # -- the run model, read by tests and tools ------------------------------------------
    @property
    def frames(self) -> list[Frame]:
        return self.model.frames if self.model else []

    @property
    def last(self) -> Frame | None:
        return self.model.last if self.model else None

    @property
    def config(self) -> api.Request | None:
        return self.model.request if self.model else None

    @property
    def problem(self) -> api.Problem | Stack | None:
        if isinstance(self.model, StackRun):
            return self.model.stack
        return self.model.problem if self.model else None

    # -- form state ---------------------------------------------------------------
    def reset_choices(self, *_: Any) -> None:
        """Refresh layer and registry choices (napari calls this on layer changes)."""
        self.form.reset_choices()
        self._follow()  # a measurement just simulated becomes the one to run
        if self.measurement.value is not self._preset_of:  # chosen without a change event
            self._use_preset(self.measurement.value)
        self._update_budget()

    def _solver_changed(self, name: str | None) -> None:
        self.w_layer.visible = takes_start(name)
        self._prefill_beta()

    def load_checkpoint(self, path: str) -> str | None:
        """Register the checkpoint at ``path`` as a prior and choose it; its name, or None.

        The field reports every keystroke: a path that is not (yet) a file is ignored.
        """
        if not Path(path).is_file():
            return None
        try:
            name = register_checkpoint(path)
        except (ValueError, OSError) as exc:  # CheckpointError and unreadable files
            self.status.setText(f"could not load {path}: {exc}")
            show_error(f"Could not load the prior {path}: {exc}")
            return None
        self.prior.refresh()
        self.prior.choice.value = name
        self.status.setText(f"prior {name!r} loaded from {path}")
        return name

    def _use_trained_settings(self, *_: Any) -> None:
        """A learned prior: the solver, accelerator and tolerance it was trained with."""
        self.solve_form.use_trained(self.prior.spec)
        self._prefill_beta()

    def _use_preset(self, layer: Any) -> None:
        """A measurement that carries its experiment's solve (the experiment samples): show
        it in the form, so that Run repeats the experiment (its backbone layer as ``w``)."""
        self._preset_of = layer
        preset = (_problems.recipe_of(layer) or {}).get("preset") if layer is not None else None
        if not isinstance(preset, dict):
            return
        request = presets.from_config(preset)
        self.prior.set_spec(request.prior)  # its trained settings first, then the preset's
        self.solve_form.use_request(request)
        start = preset.get("start_layer")
        if start in self.viewer.layers:
            self.w_layer.value = self.viewer.layers[start]
        self.status.setText(f"settings of experiment {preset.get('name')!r} (EXPERIMENTS.md)")

    def _prefill_beta(self, *_: Any) -> None:
        """A solver with a β option (MCNet) and a prior trained with it: the learned β."""
        prior, solver = self.prior.choice.value, self.solver.choice.value
        if (
            prior not in priors
            or solver is None
            or "beta" not in self.solver.registry.entry(solver).options()
        ):
            return
        beta = priors.entry(prior).metadata.get("beta")
        if isinstance(beta, (int, float)) and not isinstance(beta, bool):
            self.solver.set_option("beta", float(beta))

    def stack_policy(self, shape: tuple[int, ...]) -> StackPolicy:
        """What the stack of iterates ``(C, H, W)`` keeps with the form's settings."""
        return StackPolicy.within(self.budget.value, self.every.value, self.max_iter.value, shape)

    def stack_capacity(self, shape: tuple[int, ...]) -> int:
        """How many iterates of ``(C, H, W)`` float32 the stack keeps."""
        return self.stack_policy(shape).capacity

    def _update_budget(self, *_: Any) -> None:
        for w in (self.every, self.budget, self.budget_info):
            w.visible = self.record.value
        layer = self.measurement.value
        problem = self._problem_or_none(layer)
        if problem is None:
            self.budget_info.value = self.device.value = ""
            return
        if isinstance(problem, Stack):
            problem = problem.problems[0]
        device = problem.y.device
        self.device.value = (
            f"GPU ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "CPU"
        )
        shape = tuple(problem.op.x_shape)
        n = self.stack_capacity(shape)
        mb = n * 4 * int(np.prod(shape)) / 2**20
        self.budget_info.value = f"keeps ≤ {n} iterates × {shape[-2]}×{shape[-1]} = {mb:.1f} MB"

    def _problem_or_none(self, layer: Image | None) -> Any:
        if layer is None:
            return None
        try:
            return _problems.problem_of(layer, self.viewer.layers)
        except ValueError:
            return None

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.save_button.setEnabled(
            not running and isinstance(self.model, Run) and self.last is not None
        )
        self.pause_button.setText("Pause")

    # -- control ----------------------------------------------------------------------
    def config_from_form(self) -> api.Request:
        return self.solve_form.request(self.prior.spec)

    def run(self, *_: Any) -> bool:
        """Start a solve of the chosen measurement; returns whether it started."""
        if self.runner.running:
            show_warning("A reconstruction is already running: press Stop first.")
            return False
        layer = self.measurement.value
        if layer is None:
            show_error("Run: no measurement layer. Simulate one in the Problem panel first.")
            return False
        try:
            problem = _problems.problem_of(layer, self.viewer.layers)
            stacked = isinstance(problem, Stack)
            request = self.solve_form.request(self.prior.spec, w=self._start(problem))
            one = problem.problems[0] if stacked else problem
            warning = api.check_cost(one, request.prior, request.max_iter)
        except ValueError as exc:
            said = _problems.panel_words(str(exc))  # the panels' controls, not CLI flags
            show_error(f"Run: {said}")
            self.status.setText(f"not started: {said}")  # not the last run's text
            return False
        if warning:
            show_warning(f"{warning}. Stop ends it at any time.")
        # what was solved, kept now: the layer may be renamed or deleted while the solve runs
        recipe = {k: v for k, v in (_problems.recipe_of(layer) or {}).items() if k != "role"}
        source = {"measurement": layer.name, "problem": recipe}
        if stacked:  # every image, batch by batch, into a stack of the same leading shape
            self.model = StackRun(problem, request, source=source)
            self._lead = (tuple(layer.scale[:-2]), tuple(layer.translate[:-2]))
            job = stack_job
        else:
            policy = self.stack_policy(tuple(problem.op.x_shape)) if self.record.value else None
            self.model = Run(problem, request, stack=policy, source=source)
            job = solve_job
        self._error_scaled = False
        if STACK in self.viewer.layers:  # the last run's iterates would cover this run's result
            if self.record.value:  # hidden, refilled at the end (no remove and add: ~1 s)
                self.viewer.layers[STACK].visible = False
            else:
                self.viewer.layers.remove(STACK)
        # a comparison's grid would scatter the result, and its hidden layers stay hidden
        if not _view.give_back(self.viewer) and self.viewer.canvas.grid.enabled:
            self.viewer.canvas.grid.enabled = False
        self.result = None  # this run's own layer, added with its first frame
        for name in (CHANGE, ERROR):  # hidden by a comparison, shown again
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = True
        self.plot.set_xmax(request.max_iter)
        self.plot.set_xlabel("iteration")
        self.plot.clear()
        self.progress.setRange(0, self.model.total)
        self.progress.setValue(0)
        self.status.setText(self.model.starting_text())
        self._set_running(True)
        self.runner.start(job, problem, request)
        return True

    def _start(self, problem: Any) -> torch.Tensor | None:
        """The backbone layer for a solver that takes one, else the last result (warm start).

        A stack starts every image from its ``init(y)``."""
        if isinstance(problem, Stack):
            if takes_start(self.solver.spec) and self.w_layer.value is not None:
                raise LayerError(
                    "a stack starts each image from its init(y): choose 'init(y) (default)' "
                    "as the backbone w, or simulate one slice"
                )
            return None
        if takes_start(self.solver.spec):
            return self._backbone(problem)
        last = self.model
        if (self.warm.value and isinstance(last, Run) and last.problem is problem
                and last.last):  # fmt: skip
            return torch.as_tensor(last.last.x, device=problem.y.device)[None]
        return None

    def _backbone(self, problem: Any) -> torch.Tensor | None:
        layer = self.w_layer.value
        if not takes_start(self.solver.spec) or layer is None:
            return None
        w = from_layer_data(layer.data, layer.rgb, layer.name, unit_range=False)
        if w.shape != tuple(problem.op.x_shape):
            raise LayerError(
                f"backbone layer {layer.name!r} is {w.shape}; the problem's images are "
                f"{tuple(problem.op.x_shape)} (C, H, W)"
            )
        return torch.as_tensor(w, device=problem.y.device)[None]

    def stop(self, *_: Any) -> None:
        """Stop within one iteration; the partial result stays."""
        self.runner.stop()
        self.status.setText("stopping …")

    def save_run(self, path: str | Path | None = None) -> Path | None:
        """Save the last run (asking where when ``path`` is None); the file written, or None."""
        run = self.model
        if isinstance(run, StackRun):
            show_error("Save run: a stack's result is its layer; save it with File ▸ Save Layers.")
            return None
        if run is None or run.last is None or self.runner.running:
            show_error("Save run: no finished run to save yet; press Run first.")
            return None
        if path is None:
            suggested = re.sub(r"[^\w.=-]+", "_", run.result_name) + ".npz"
            path, _ = QFileDialog.getSaveFileName(
                self, "Save run", suggested, "DEQ Explorer run (*.npz)"
            )
            if not path:
                return None
        path = Path(path if str(path).endswith(".npz") else f"{path}.npz")
        try:
            written = run.save(path)
        except OSError as exc:
            show_error(f"Could not save the run to {path}: {exc}")
            self.status.setText(f"not saved: {exc}")
            return None
        self.status.setText(f"run saved to {written}")
        return written

    def _plot_selected(self, *_: Any) -> None:
        """A result layer chosen in the layer list (a reopened run too): its curves."""
        layer = self.viewer.layers.selection.active
        meta = layer.metadata.get(_problems.KEY) if layer is not None else None
        if self.runner.running or not isinstance(meta, dict) or not meta.get("history"):
            return
        self.plot.set_xmax(None)
        self.plot.clear()
        self.plot.set_series("run", meta["history"])

    def toggle_pause(self, *_: Any) -> None:
        self.runner.toggle_pause()
        self.pause_button.setText("Resume" if self.pause_button.text() == "Pause" else "Pause")

    # -- streaming ------------------------------------------------------------------------
    def _on_frames(self, batch: list[Any]) -> None:
        run = self.model
        frames = [m for m in batch if isinstance(m, (Frame, StackFrame))]
        tuning = [m for m in batch if isinstance(m, (Candidate, Tuning))]
        for message in tuning:
            run.tuned(message)
        if tuning and not frames:
            self.status.setText(run.tuning_text())
        run.add(frames)
        for failed in (m for m in batch if isinstance(m, Failed)):
            run.fail(failed.message)
            show_error(f"Reconstruction failed: {failed.message}")
        if run.last is None or not frames:
            return
        stacked = isinstance(run, StackRun)
        if stacked:
            self._show_images(run)
        else:
            self._show(run.last)
        self.progress.setValue(run.progress())
        now = time.perf_counter()
        if now - self._plotted > _PLOT_EVERY_S or (stacked and run.last.status != "running"):
            self._plotted = now
            name = run.series_name() if stacked else "run"
            if name not in self.plot.lines:
                self.plot.clear()  # a stack's next batch: its own curves
            self.plot.set_series(name, run.history())
        self.status.setText(run.live_text())

    def _show_images(self, run: StackRun) -> None:
        """A stack's result layer: added with the first images, refreshed as batches advance.

        The layer shows the run's own array (no copy); images not solved yet are zeros.
        """
        if run.take_fresh() is None:
            return
        if self.result is not None and self.result in self.viewer.layers:
            self.result.refresh(thumbnail=False, highlight=False, extent=False)
            return
        data, rgb = to_layer_data(run.images())
        (name,) = _problems.unique_names(self.viewer.layers, [run.result_name])
        lead_scale, lead_translate = self._lead
        self.result = self.viewer.add_image(
            data, name=name, rgb=rgb, scale=(*lead_scale, 1.0, 1.0),
            translate=(*lead_translate, 0.0, 0.0),
            **({} if rgb else {"contrast_limits": (0.0, 1.0)}),
        )  # fmt: skip
        self.viewer.reset_view()

    def _layer(
        self, layer: Image | None, name: str, data: np.ndarray, rgb: bool, slot: int, **kwargs: Any
    ) -> Image:
        """Update ``layer`` in place when it is still shown and fits, else add a layer ``name``
        (a counter added if taken) ``slot`` widths to the right."""
        if layer is not None and layer in self.viewer.layers:
            # in place; the thumbnail (and the layer list's repaint) waits for the run's end
            if layer.rgb == rgb and _view.refill(layer, data):
                return layer
            if name in (CHANGE, ERROR):  # the live maps are the panel's own: replaced
                self.viewer.layers.remove(layer)
        (name,) = _problems.unique_names(self.viewer.layers, [name])
        width = data.shape[1]
        layer = self.viewer.add_image(
            data.copy(), name=name, rgb=rgb, translate=(0, slot * (width + _GAP)), **kwargs
        )  # its own buffer, later updated in place (frames keep theirs)
        self.viewer.reset_view()
        return layer

    def _map(self, name: str) -> Image | None:
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _show(self, f: Frame) -> None:
        """Show ``f`` in the result layer, and in the change/error maps when they are due.

        The maps follow at most every ``_MAPS_EVERY_S`` (and at the end), in the same
        event-loop turn as the result, so that both share one canvas draw and one
        composition of the window. At most one layer is *added* per turn (adding one costs
        napari 0.1–0.4 s of the GUI thread): a new result layer's maps come with the next
        batch, the error map one batch after the change map.
        """
        data, rgb = to_layer_data(f.x)
        limits = {} if rgb else {"contrast_limits": (0.0, 1.0)}
        new = self.result is None or self.result not in self.viewer.layers
        self.result = self._layer(self.result, self.model.result_name, data, rgb, 0, **limits)
        self._maps_due = f
        now = time.perf_counter()
        if not new and now - self._maps_shown >= _MAPS_EVERY_S:
            self._maps_shown = now
            self._show_maps()

    def _show_maps(self, *, all_now: bool = False) -> None:
        """The change and error maps of the frame due (one new layer per call unless
        ``all_now``: the run's end)."""
        f, self._maps_due = self._maps_due, None
        if f is None:
            return
        added = self._map(CHANGE) is None
        change = f.change.max(axis=0)  # largest channel change, one map for colour too
        top = max(float(change.max()), 1e-12)  # limits given: napari does not scan a new map
        layer = self._layer(self._map(CHANGE), CHANGE, change, False, 1, colormap="magma",
                            contrast_limits=(0.0, top))  # fmt: skip
        if not top <= layer.contrast_limits[1] <= 4 * top:  # rescale (a repaint) on a 4× drift
            layer.contrast_limits = (0.0, top)
        if f.error is not None and added and self._map(ERROR) is None and not all_now:
            self._maps_due = f  # the error map's layer comes with the next batch
        elif f.error is not None:
            error = f.error.max(axis=0)
            limits = (0.0, max(float(error.max()), 1e-12))
            layer = self._layer(self._map(ERROR), ERROR, error, False, 2, colormap="inferno",
                                contrast_limits=limits)  # fmt: skip
            if not self._error_scaled:
                self._error_scaled = True
                layer.contrast_limits = limits

    def _on_done(self) -> None:
        self._set_running(False)
        if isinstance(self.model, StackRun):
            self._stack_done(self.model)
            return
        self._show_maps(all_now=True)
        for layer in (self.result, self._map(CHANGE), self._map(ERROR)):
            if layer is not None and layer in self.viewer.layers:
                layer.refresh(data_displayed=False, highlight=False, extent=False)
        run = self.model
        self.status.setText(run.final_text())
        if run.last is None:
            return
        self.plot.set_series("run", run.history())
        self.result.metadata[_problems.KEY] = run.metadata("reconstruction")
        if run.stack_ks:
            self._add_stack()
        if run.last.status == "stalled":
            show_warning(
                f"The residual stopped falling at {run.last.residual:.2e} (k = {run.last.k}), "
                "above the tolerance: the map may not be contractive at these settings. Try "
                "no accelerator, a smaller step size or a stronger prior."
            )
        if run.last.status == "diverged":
            show_warning(
                f"The iteration diverged at k = {run.last.k}; the last finite iterate is kept. "
                "Try a smaller step size, a stronger prior or an accelerator off."
            )

    def _stack_done(self, run: StackRun) -> None:
        """A stack run ended: its outcome in the status, the metadata, each image's PSNR."""
        self.status.setText(run.final_text())
        if run.last is None or self.result is None:
            return
        self.result.refresh(highlight=False, extent=False)
        self.result.metadata[_problems.KEY] = run.metadata("reconstruction")
        if any(p is not None for p in run.record.psnr):
            self.plot.set_xmax(None)
            self.plot.set_xlabel("image")
            self.plot.clear()
            self.plot.set_series("PSNR per image", run.per_image())
        bad = [s for s in ("diverged", "stalled") if s in run.record.status]
        if bad:
            show_warning(
                f"Some images {' or '.join(bad)} (see the result's metadata): try a smaller "
                "step size, a stronger prior or no accelerator."
            )

    def _add_stack(self) -> None:
        """The run's iterates into the ``iterates`` layer: the last run's refilled and moved
        on top where it has the same kind of images, else a new layer."""
        data, rgb = to_layer_data(self.model.stack())
        meta = {_problems.KEY: {"role": "iterates", "iterations": list(self.model.stack_ks)}}
        old = self._map(STACK)
        if old is not None and old.rgb == rgb and old.ndim == data.ndim - rgb:
            if not _view.refill(old, data):
                old.data = data
            old.metadata, old.visible = meta, True
            layers = self.viewer.layers
            layers.move(layers.index(old), len(layers))
        else:
            if old is not None:
                self.viewer.layers.remove(old)
            self.viewer.add_image(
                data, rgb=rgb, name=STACK, contrast_limits=None if rgb else (0.0, 1.0),
                metadata=meta,
            )  # fmt: skip
        axis = self.viewer.dims.ndim - self.viewer.layers[STACK].ndim
        labels = list(self.viewer.dims.axis_labels)
        labels[axis] = "iteration"
        self.viewer.dims.axis_labels = labels
        # napari's Left/Right arrows step the slider last used: make it the iterations'
        self.viewer.dims.last_used = axis
        self._follow_slider()

    def _follow_slider(self, *_: Any) -> None:
        """Mark on the plot the iteration napari's slider shows in the stack."""
        if STACK not in self.viewer.layers:
            return
        stack = self.viewer.layers[STACK]
        ks = stack.metadata.get(_problems.KEY, {}).get("iterations", [])
        axis = self.viewer.dims.ndim - stack.ndim
        if not ks or axis < 0 or axis >= self.viewer.dims.ndim:
            return
        index = int(np.clip(self.viewer.dims.current_step[axis], 0, len(ks) - 1))
        self.plot.mark(ks[index])
