"""The Train panel: fine-tune a prior in the background and use it at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    SpinBox,
)
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from deq_explorer import training
from deq_explorer._napari._jobs import train_job
from deq_explorer._napari._plot import Axis, CurvePlot
from deq_explorer._napari._runner import Failed, Runner
from deq_explorer._napari._widgets import ProgressBar, device_choices, events, on_priors_changed
from deq_explorer.errors import ConfigError
from deq_explorer.priors.checkpoint import register_checkpoint, user_dir
from deq_explorer.registry import priors, solvers
from deq_explorer.training.config import BACKWARDS

if TYPE_CHECKING:
    import napari

__all__ = ["TrainPanel"]

#: the defaults finish in a few minutes on a CPU: one default step (DEQ on MRI, pnp-pgm,
#: JFB backward, 20 forward iterations, batch 4, crop 64) took 1.0–1.4 s on a shared 2-core
#: CPU (the implicit backward with 100 forward iterations: about 50 s a step)
STEPS, VAL_EVERY, MAX_ITER, BACKWARD = 150, 25, 20, "jfb"
STEPS_TIP = (
    f"optimizer steps; the defaults ({STEPS} steps) take about 3 minutes on a 2-core CPU "
    "(≈ 1.2 s a step), far less on a GPU"
)

CURVES = (Axis(key="loss", label="loss", log=True), Axis(key="val_psnr", label="val. PSNR [dB]"))


def _prior_modes(_: Any = None) -> list[str]:
    """The modes that train a prior (backbones, MCNet's y ↦ x networks, train from the CLI)."""
    return [m for m in training.modes.names() if training.mode(m).role == "denoiser"]


def _checkpoint_priors(_: Any = None) -> list[tuple[str, str]]:
    """Base-prior choices: a fresh network, or any prior that is a checkpoint."""
    out = [("(new network)", "")]
    out += [(e.name, e.name) for e in priors.entries() if "path" in e.metadata]
    return out


class TrainPanel(QWidget):
    """Mode, base prior, tasks, noise, backward rule, data, steps; Start / Stop.

    Training events stream into a loss / validation-PSNR plot, a progress bar with an
    ETA and a bar in napari's activity dock (closed at the end, on Stop, on failure).
    The checkpoint path is checked before training starts. When training ends (or is
    stopped) the checkpoint is registered as a prior and every panel's prior list shows it at once.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = getattr(viewer, "__wrapped__", viewer)
        self.mode = ComboBox(label="mode", choices=_prior_modes, value="deq")
        self.base = ComboBox(label="base prior", choices=_checkpoint_priors)
        self.operators = LineEdit(
            label="operators", value="mri:rate=0.1", tooltip="operator specs separated by ';'"
        )
        self.noise = LineEdit(
            label="noise σ", value="0.01", tooltip="noise levels, comma-separated"
        )
        self.solver = ComboBox(label="solver", choices=lambda _: solvers.names(), value="pnp-pgm")
        self.backward = ComboBox(label="backward", choices=list(BACKWARDS), value=BACKWARD)
        self.backward.tooltip = (
            "jfb: one-step gradient (fast); implicit: exact gradient, many times slower a step"
        )
        self.max_iter = SpinBox(label="forward iterations", value=MAX_ITER, min=1, max=10_000)
        self.max_iter.tooltip = "cap of each training step's fixed-point solve"
        self.data = FileEdit(label="dataset folder", mode="d", value="")
        self.data.tooltip = "a folder of png/jpg/tif images; empty = the built-in offline set"
        self.steps = SpinBox(label="steps", value=STEPS, min=1, max=10_000_000)
        self.steps.tooltip = STEPS_TIP
        self.val_every = SpinBox(label="validate every", value=VAL_EVERY, min=1, max=10_000_000)
        self.val_every.tooltip = "validation PSNR every this many steps (and at the end)"
        self.device = ComboBox(label="device", choices=device_choices())
        self.batch = SpinBox(label="batch", value=4, min=1, max=4096)
        self.crop = SpinBox(label="crop", value=64, min=8, max=4096)
        self.lr = FloatSpinBox(label="learning rate", value=1e-4, min=1e-8, max=1.0, step=1e-5)
        self.out = FileEdit(
            label="checkpoint", mode="w", value=str(user_dir() / "deq_prior.safetensors")
        )
        self.out.tooltip = (
            "where the trained prior is written; priors in the default folder are listed "
            "again when napari restarts"
        )
        self.form = Container(
            widgets=[
                self.mode,
                self.base,
                self.operators,
                self.noise,
                self.solver,
                self.backward,
                self.max_iter,
                self.data,
                self.steps,
                self.batch,
                self.crop,
                self.lr,
                self.val_every,
                self.device,
                self.out,
            ]
        )
        self.start_button, self.stop_button = QPushButton("Start"), QPushButton("Stop")
        self.progress = ProgressBar()
        self.status = QLabel("ready")
        self.status.setWordWrap(True)
        self.plot = CurvePlot(CURVES, xlabel="step", theme=self.viewer.theme)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 1)

        self.runner = Runner(
            self, self._on_events, self._on_done, interval_ms=100, on_shutdown=self._close_activity
        )
        self.activity: progress | None = None  # the bar in napari's activity dock
        self.history: dict[str, list] = {}
        self.checkpoint: Path | None = None
        self.registered: str | None = None
        self._failed: str | None = None
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.runner.stop)
        self.viewer.events.theme.connect(lambda e: self.plot.apply_theme(self.viewer.theme))
        on_priors_changed(self, self.form.reset_choices)
        self._set_running(False)

    def reset_choices(self, *_: Any) -> None:
        self.form.reset_choices()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def config_from_form(self) -> training.TrainConfig:
        """The form as one :class:`TrainConfig` (raises ConfigError on bad fields)."""
        try:
            noise = tuple(
                float(s) for s in self.noise.value.replace(";", ",").split(",") if s.strip()
            )
        except ValueError:
            raise ConfigError(
                f"noise σ {self.noise.value!r}: expected numbers like 0.01,0.02"
            ) from None
        data = str(self.data.value) if str(self.data.value) not in ("", ".") else "builtin"
        return training.TrainConfig(
            mode=self.mode.value,
            prior=self.base.value,
            operators=tuple(s.strip() for s in self.operators.value.split(";") if s.strip()),
            noise=noise,
            solver=self.solver.value,
            backward=self.backward.value,
            max_iter=int(self.max_iter.value),
            data=data,
            steps=int(self.steps.value),
            batch=int(self.batch.value),
            crop=int(self.crop.value),
            val_crop=int(self.crop.value),
            lr=float(self.lr.value),
            val_every=int(self.val_every.value),
            device=self.device.value,
            out=str(self.out.value),
        )

    def start(self, *_: Any) -> bool:
        """Start training; returns whether it started."""
        if self.runner.running:
            show_warning("Training is already running: press Stop first.")
            return False
        try:
            config = self.config_from_form()
            training.check_writable(config.out, what="'checkpoint' path")
        except (ValueError, TypeError) as exc:
            show_error(f"Train: {exc}")
            self.status.setText(f"not started: {exc}")
            return False
        self.history = {"step": [], "loss": [], "val_step": [], "val_psnr": []}
        self.checkpoint, self.registered, self._failed = None, None, None
        self.plot.set_xmax(config.steps if not config.epochs else None)
        self.plot.clear()
        self.progress.setRange(0, config.steps)
        self.progress.setValue(0)
        self._t0 = time.perf_counter()
        self.status.setText("starting …")
        self._close_activity()
        self.activity = progress(total=config.steps, desc=f"Train {config.mode}")
        self._set_running(True)
        self.runner.start(train_job, config)
        return True

    def _on_events(self, batch: list[Any]) -> None:
        for ev in batch:
            if isinstance(ev, training.StepEvent):
                self.history["step"].append(ev.step)
                self.history["loss"].append(ev.loss)
                self._progress(ev.step)
            elif isinstance(ev, training.ValEvent):
                self.history["val_step"].append(ev.step)
                self.history["val_psnr"].append(ev.psnr)
            elif isinstance(ev, training.CheckpointEvent):
                self.checkpoint = Path(ev.path)
            elif isinstance(ev, training.DoneEvent):
                self.checkpoint = Path(ev.path) if ev.path else self.checkpoint
                if ev.status == "diverged":  # the last healthy checkpoint stays as it was
                    self._failed = ev.message
            elif isinstance(ev, training.FailedEvent | Failed):
                self._failed = ev.message
        self.plot.set_series("loss", {"k": self.history["step"], "loss": self.history["loss"]})
        self.plot.set_series(
            "val", {"k": self.history["val_step"], "val_psnr": self.history["val_psnr"]}
        )

    def _progress(self, step: int) -> None:
        total = self.progress.maximum()
        self.progress.setValue(min(step, total))
        if self.activity is not None:
            self.activity.update(min(step, total) - self.activity.n)
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / max(step, 1) * (total - step)
        loss = self.history["loss"][-1]
        ckpt = f" · checkpoint {self.checkpoint}" if self.checkpoint else ""
        self.status.setText(f"step {step}/{total} · loss {loss:.3e} · ETA {eta:.0f} s{ckpt}")

    def _close_activity(self) -> None:
        """Take the bar out of napari's activity dock (at the end, on stop, on failure)."""
        bar, self.activity = self.activity, None
        if bar is not None:
            bar.close()

    def _on_done(self) -> None:
        self._close_activity()
        self._set_running(False)
        if self._failed:
            show_error(f"Training failed: {self._failed}")
            self.status.setText(f"failed: {self._failed}")
            return
        if self.checkpoint is None or not self.checkpoint.exists():
            self.status.setText("stopped before a checkpoint was written")
            return
        try:
            self.registered = register_checkpoint(self.checkpoint, replace=True)
        except ValueError as exc:
            show_error(f"Could not register {self.checkpoint}: {exc}")
            return
        events.priors_changed.emit()
        self.status.setText(f"done · prior {self.registered!r} registered from {self.checkpoint}")
        show_info(f"New prior {self.registered!r} is ready in Reconstruct and Compare.")
