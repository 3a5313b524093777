"""A matplotlib plot for a dock: curves against iteration, themed like napari."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator
from napari.utils.theme import get_theme
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

__all__ = ["Axis", "CurvePlot"]


@dataclass(frozen=True, kw_only=True)
class Axis:
    """One panel of the plot: the history key it shows, its label and scale."""

    key: str
    label: str
    log: bool = False


class CurvePlot(QWidget):
    """Stacked axes sharing the iteration axis; one line per series per axis.

    ``set_series(name, history)`` draws ``history[axis.key]`` (a list with
    ``None`` where a value is unknown) against ``history["k"]``; ``mark(k)``
    draws a vertical marker (the iteration shown by napari's slider).
    Redraws go through ``draw_idle`` so many updates cost one paint.
    """

    def __init__(
        self,
        axes: Sequence[Axis],
        xlabel: str = "iteration",
        theme: str = "dark",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.axes_spec = tuple(axes)
        # no layout engine and plain-text ticks: a redraw must stay cheap (no mathtext)
        self.figure = Figure(figsize=(4, 1.2 * len(axes) + 0.6))
        self.figure.subplots_adjust(left=0.2, right=0.97, top=0.97, bottom=0.1, hspace=0.12)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(90 * len(axes) + 40)
        self.axes = self.figure.subplots(len(axes), 1, sharex=True, squeeze=False)[:, 0]
        for ax, spec in zip(self.axes, self.axes_spec, strict=True):
            ax.set_ylabel(spec.label, fontsize=8)
            ax.set_yscale("log" if spec.log else "linear")
            ax.tick_params(labelsize=7)
            if spec.log:
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=6))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
            else:
                ax.yaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        self.axes[-1].set_xlabel(xlabel, fontsize=8)
        self.lines: dict[str, list] = {}
        self.markers = [ax.axvline(np.nan, lw=1, ls="--") for ax in self.axes]
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.apply_theme(theme)

    def apply_theme(self, theme: str) -> None:
        """Colour the figure with napari theme ``theme`` (``"dark"``, ``"light"`` ...)."""
        t = get_theme(theme)
        bg, fg = t.canvas.as_hex(), t.text.as_hex()
        self.figure.set_facecolor(bg)
        for ax in self.axes:
            ax.set_facecolor(bg)
            ax.tick_params(colors=fg, which="both")
            ax.yaxis.label.set_color(fg)
            ax.xaxis.label.set_color(fg)
            for spine in ax.spines.values():
                spine.set_color(fg)
        for m in self.markers:
            m.set_color(t.highlight.as_hex())
        self.canvas.draw_idle()

    def clear(self) -> None:
        """Remove every series and the marker."""
        for lines in self.lines.values():
            for line in lines:
                line.remove()
        self.lines = {}
        self.mark(None)
        self._legend()

    def set_series(self, name: str, history: dict[str, list], xkey: str = "k") -> None:
        """Show (or replace) series ``name`` from a history of lists."""
        if name not in self.lines:
            color = f"C{len(self.lines) % 10}"
            self.lines[name] = [
                ax.plot([], [], lw=1.4, color=color, label=name)[0] for ax in self.axes
            ]
            self._legend()
        xs = np.asarray(history.get(xkey, []), dtype=float)
        for ax, spec, line in zip(self.axes, self.axes_spec, self.lines[name], strict=True):
            ys = np.array([np.nan if v is None else v for v in history.get(spec.key, [])], float)
            n = min(len(xs), len(ys))
            line.set_data(xs[:n], ys[:n])
            ax.relim()
            ax.autoscale_view()
        self.canvas.draw_idle()

    def data(self, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The plotted ``(x, y)`` arrays of series ``name`` by axis key."""
        return {
            spec.key: tuple(np.asarray(a) for a in line.get_data())
            for spec, line in zip(self.axes_spec, self.lines[name], strict=True)
        }

    def mark(self, x: float | None) -> None:
        """Draw the vertical marker at ``x`` (``None`` hides it)."""
        for m in self.markers:
            m.set_xdata([np.nan if x is None else x] * 2)
        self.canvas.draw_idle()

    @property
    def marked(self) -> float | None:
        x = float(np.asarray(self.markers[0].get_xdata())[0])
        return None if np.isnan(x) else x

    def _legend(self) -> None:
        ax = self.axes[0]
        if len(self.lines) > 1:
            leg = ax.legend(fontsize=7, loc="best", framealpha=0.5)
            for text in leg.get_texts():
                text.set_color(self.axes[0].yaxis.label.get_color())
        elif ax.get_legend() is not None:
            ax.get_legend().remove()
