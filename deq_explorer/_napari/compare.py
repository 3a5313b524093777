"""The Compare panel: several priors on one measurement, side by side."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deq_explorer import api
from deq_explorer._napari import _problems, _view
from deq_explorer._napari._convert import shown_slice, to_layer_data
from deq_explorer._napari._jobs import Frame, compare_job
from deq_explorer._napari._plot import Axis, CurvePlot
from deq_explorer._napari._run import Comparison, Run
from deq_explorer._napari._runner import Failed, Runner
from deq_explorer._napari._widgets import (
    FollowNewest,
    ProgressBar,
    SolveForm,
    image_layers,
    on_priors_changed,
    shortcut,
)
from deq_explorer.registry import priors
from deq_explorer.stacks import Stack

if TYPE_CHECKING:
    import napari

__all__ = ["COLUMNS", "ComparePanel"]

#: the table's columns: what is compared first, so that it shows without scrolling
COLUMNS = (
    "prior",
    "PSNR",
    "SSIM",
    "status",
    "iterations",
    "consistency",
    "seconds",
    "solver",
    "accel",
)
CURVES = (
    Axis(key="residual", label="rel. residual", log=True),
    Axis(key="psnr", label="PSNR [dB]"),
)


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


class ComparePanel(QWidget):
    """Tick priors (and add specs); Run solves each on the same measurement.

    Results appear as layers in napari's grid mode, named with the prior and
    its PSNR/SSIM; the curves of all runs share one plot; the metrics table
    can be copied (tab-separated) or saved as CSV. The viewer's arrangement
    before the comparison (grid mode, which layers were visible) is kept and
    put back by "Restore view" (:meth:`restore_view`), and by the
    Reconstruct panel when it runs next (:mod:`~deq_explorer._napari._view`).
    A stack measurement is compared on the image napari shows.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = getattr(viewer, "__wrapped__", viewer)
        self.measurement = ComboBox(
            label="measurement",
            choices=lambda _: image_layers(self.viewer, _problems.is_measurement),
        )
        self._follow = FollowNewest(self.measurement)
        self.extra = LineEdit(
            label="more priors", tooltip="specs separated by ';', e.g. tv:weight=0.1"
        )
        self.solve_form = SolveForm()
        self.solver, self.accel = self.solve_form.solver, self.solve_form.accel
        self.max_iter, self.tol = self.solve_form.max_iter, self.solve_form.tol
        self.trained = CheckBox(
            text="learned priors use their trained solve", value=True,
            tooltip="a prior trained in a solver (deq-mri-radial10, mtdeq ...) runs with that "
            "solver, accelerator and tolerance; the others with the form's",
        )  # fmt: skip
        self.form = Container(
            widgets=[self.measurement, *self.solve_form.widgets, self.trained, self.extra]
        )  # fmt: skip
        self.prior_list = QListWidget()
        self.prior_list.setMaximumHeight(120)
        self.run_button, self.stop_button = QPushButton("Run comparison"), QPushButton("Stop")
        self.copy_button, self.save_button = QPushButton("Copy table"), QPushButton("Save CSV…")
        self.restore_button = QPushButton("Restore view")
        self.restore_button.setToolTip("grid mode off and the layers shown before the comparison")
        self.progress = ProgressBar()
        self.status = QLabel("tick two or more priors")
        self.plot = CurvePlot(CURVES, theme=self.viewer.theme)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("priors"))
        layout.addWidget(self.prior_list)
        layout.addWidget(self.form.native)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.stop_button)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(self.copy_button)
        row.addWidget(self.save_button)
        row.addWidget(self.restore_button)
        layout.addLayout(row)

        self.runner = Runner(self, self._on_frames, self._on_done)
        self.model: Comparison | None = None  # the current or last comparison
        self.layers: dict[int, Any] = {}
        self.run_button.clicked.connect(self.run)
        self.shortcuts = [
            shortcut(self, "Ctrl+Return", self.run),
            shortcut(self, "Escape", self.runner.stop),
        ]
        self.run_button.setToolTip("Ctrl+Return while the panel has the focus")
        self.stop_button.setToolTip("Escape while the panel has the focus")
        self.stop_button.clicked.connect(self.runner.stop)
        self.copy_button.clicked.connect(self.copy_table)
        self.save_button.clicked.connect(lambda: self.save_csv())
        self.restore_button.clicked.connect(self.restore_view)
        self.viewer.events.theme.connect(lambda e: self.plot.apply_theme(self.viewer.theme))
        on_priors_changed(self, self.refresh_priors)
        self.refresh_priors()
        self._set_running(False)

    # -- the run model, read by tests and tools ------------------------------------------
    @property
    def configs(self) -> list[api.Request]:
        return [run.request for run in self.model.runs] if self.model else []

    @property
    def frames(self) -> dict[int, list[Frame]]:
        runs = self.model.runs if self.model else []
        return {i: run.frames for i, run in enumerate(runs) if run.frames}

    # -- choices ------------------------------------------------------------------
    def refresh_priors(self, *_: Any) -> None:
        """List the registry's priors, keeping the ticks (``identity`` and ``tv`` by default)."""
        ticked = set(self.ticked()) if self.prior_list.count() else {"identity", "tv"}
        self.prior_list.clear()
        for name in priors.names():
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in ticked else Qt.CheckState.Unchecked)
            self.prior_list.addItem(item)

    def ticked(self) -> list[str]:
        items = (self.prior_list.item(i) for i in range(self.prior_list.count()))
        return [it.text() for it in items if it.checkState() == Qt.CheckState.Checked]

    def set_ticked(self, names: list[str]) -> None:
        for i in range(self.prior_list.count()):
            item = self.prior_list.item(i)
            on = item.text() in names
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def reset_choices(self, *_: Any) -> None:
        self.form.reset_choices()
        self._follow()  # a measurement just simulated becomes the one to compare on

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    # -- control --------------------------------------------------------------------
    def run(self, *_: Any) -> bool:
        """Start the comparison; returns whether it started."""
        if self.runner.running:
            show_warning("A comparison is already running: press Stop first.")
            return False
        specs = self.ticked() + [s.strip() for s in self.extra.value.split(";") if s.strip()]
        if not specs:
            show_error("Compare: tick at least one prior (or type a spec under 'more priors').")
            return False
        layer = self.measurement.value
        if layer is None:
            show_error("Compare: no measurement layer. Simulate one in the Problem panel first.")
            return False
        try:
            problem = _problems.problem_of(layer, self.viewer.layers)
        except ValueError as exc:
            show_error(f"Compare: {exc}")
            return False
        where = ""
        if isinstance(problem, Stack):  # the image on screen
            index = shown_slice(layer, self.viewer.dims.point)
            number = ", ".join(str(i + 1) for i in index)  # 1-based, as the panels count images
            problem, where = problem.at(index), f" on image {number}"
        try:
            requests = [self.solve_form.request(p, trained=self.trained.value) for p in specs]
        except ValueError as exc:
            show_error(f"Compare: {exc}")
            return False
        self.model = Comparison(problem, requests)
        self.layers = {}
        self.plot.set_xmax(max(r.max_iter for r in requests))
        self.plot.clear()
        self.table.setRowCount(0)
        self.progress.setRange(0, self.model.progress()[1])
        self.progress.setValue(0)
        self.status.setText(f"comparing {len(specs)} priors{where} …")
        _view.arrange(self.viewer)
        self._set_running(True)
        self.runner.start(compare_job, problem, requests)
        return True

    # -- streaming ---------------------------------------------------------------------
    def _on_frames(self, batch: list[Any]) -> None:
        for m in batch:
            if isinstance(m, Failed):
                show_error(f"Comparison failed: {m.message}")
        for i in self.model.add([m for m in batch if isinstance(m, Frame)]):
            run = self.model.runs[i]
            self._show(i, run.last)
            self.plot.set_series(run.label, run.history())
            if run.ended:
                self._finish(i, run)
        self.progress.setValue(self.model.progress()[0])

    def _show(self, run: int, f: Frame) -> None:
        data, rgb = to_layer_data(f.x)
        layer = self.layers.get(run)
        if layer is None or layer not in self.viewer.layers:
            layer = self.viewer.add_image(
                data,
                rgb=rgb,
                name=self.model.runs[run].label,
                contrast_limits=None if rgb else (0.0, 1.0),
            )
            layer.name_overlay.visible = True
            _view.keep_hidden(self.viewer, layer)
            self.layers[run] = layer
            self.viewer.canvas.grid.enabled = True
            self.viewer.reset_view()
        elif not _view.refill(layer, data):
            layer.data = data

    def _finish(self, i: int, run: Run) -> None:
        f, layer = run.last, self.layers[i]
        label = run.label
        if f.psnr is not None:
            label += f" | PSNR {f.psnr:.2f} dB | SSIM {f.ssim:.3f}"
        layer.name = label
        row = self.row(i)
        layer.metadata[_problems.KEY] = run.metadata("comparison")
        n = self.table.rowCount()
        self.table.insertRow(n)
        for j, value in enumerate(row):
            self.table.setItem(n, j, QTableWidgetItem(str(value)))
        self.table.resizeColumnsToContents()

    def row(self, run: int) -> tuple:
        """The table row of run ``run``: values in :data:`COLUMNS` order."""
        c, f = self.model.runs[run].request, self.model.runs[run].last
        return (
            self.model.runs[run].label,
            _fmt(f.psnr, ".2f"),
            _fmt(f.ssim, ".4f"),
            f.status,
            f.k,
            _fmt(f.consistency, ".3e"),
            _fmt(f.seconds, ".2f"),
            c.solver,
            c.accel,
        )

    def _on_done(self) -> None:
        self._set_running(False)
        self.viewer.reset_view()
        self.status.setText(self.model.final_text())  # "Restore view" undoes the grid
        if all(run.finished for run in self.model.runs):
            show_info(f"Comparison finished: {len(self.model.runs)} runs (see the table).")

    def restore_view(self, *_: Any) -> bool:
        """Put back the viewer as it was before the comparison; returns whether there was one."""
        return _view.give_back(self.viewer)

    # -- table export ------------------------------------------------------------------------
    def table_rows(self) -> list[list[str]]:
        """The table as rows of strings, header first."""
        rows = [list(COLUMNS)]
        for i in range(self.table.rowCount()):
            rows.append([self.table.item(i, j).text() for j in range(self.table.columnCount())])
        return rows

    def copy_table(self, *_: Any) -> str:
        """Copy the table to the clipboard as tab-separated text (and return it)."""
        buf = io.StringIO()
        csv.writer(buf, delimiter="\t", lineterminator="\n").writerows(self.table_rows())
        QApplication.clipboard().setText(buf.getvalue())
        return buf.getvalue()

    def save_csv(self, path: str | Path | None = None) -> Path | None:
        """Write the table as CSV to ``path`` (asks for one when ``None``)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save metrics", "compare.csv", "CSV (*.csv)"
            )
            if not path:
                return None
        path = Path(path)
        with path.open("w", newline="") as fh:
            csv.writer(fh).writerows(self.table_rows())
        show_info(f"Saved {path}")
        return path
