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

    Streaming is cheap: the axes (ticks, labels: most of a matplotlib draw)
    are drawn only when a limit must grow — limits expand with headroom
    (whole decades on log axes, ``set_xmax`` fixes the iteration range) —
    and every other update blits the lines onto the saved background.
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
        self.markers = [ax.axvline(np.nan, lw=1, ls="--", animated=True) for ax in self.axes]
        self._background = None  # the figure without lines and markers, after the last full draw
        self._xmax: float | None = None
        self.full_draws = 0  # how many times the axes were drawn (for tests and benchmarks)
        self.canvas.mpl_connect("draw_event", self._on_draw)
        self._reset_limits()
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
        self._redraw()

    def clear(self) -> None:
        """Remove every series and the marker; limits start afresh."""
        for lines in self.lines.values():
            for line in lines:
                line.remove()
        self.lines = {}
        for m in self.markers:
            m.set_xdata([np.nan, np.nan])
        self._legend()
        self._reset_limits()
        self._redraw()

    def set_xmax(self, xmax: float | None) -> None:
        """Fix the x range to ``[0, xmax]`` (e.g. the iteration cap); ``None`` grows with data."""
        self._xmax = None if xmax is None else float(xmax)

    def set_series(self, name: str, history: dict[str, list], xkey: str = "k") -> None:
        """Show (or replace) series ``name`` from a history of lists."""
        new = name not in self.lines
        if new:
            color = f"C{len(self.lines) % 10}"
            self.lines[name] = [
                ax.plot([], [], lw=1.4, color=color, label=name, animated=True)[0]
                for ax in self.axes
            ]
            self._legend()
        xs = np.asarray(history.get(xkey, []), dtype=float)
        for spec, line in zip(self.axes_spec, self.lines[name], strict=True):
            ys = np.array([np.nan if v is None else v for v in history.get(spec.key, [])], float)
            n = min(len(xs), len(ys))
            line.set_data(xs[:n], ys[:n])
        grown = self._grow_limits()
        if new or grown:
            self._redraw()
        else:
            self._blit()

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
        self._blit()

    @property
    def marked(self) -> float | None:
        x = float(np.asarray(self.markers[0].get_xdata())[0])
        return None if np.isnan(x) else x

    # -- drawing ---------------------------------------------------------------------
    def _reset_limits(self) -> None:
        self.axes[0].set_xlim(0, self._xmax or 10)
        for ax in self.axes:
            ax.set_ylim(*((1e-3, 1.0) if ax.get_yscale() == "log" else (0.0, 1.0)))

    def _grow_limits(self) -> bool:
        """Expand any axis whose data left its view; returns whether one changed."""
        changed = False
        xs = [line.get_xdata() for lines in self.lines.values() for line in lines[:1]]
        x_hi = max((float(np.nanmax(x)) for x in xs if len(x)), default=0.0)
        lo, hi = self.axes[0].get_xlim()
        if self._xmax is not None and x_hi <= self._xmax:
            want = (0.0, self._xmax)
        elif x_hi > hi or lo != 0:
            want = (0.0, max(10.0, 2.0 * x_hi))
        else:
            want = (lo, hi)
        if want != (lo, hi):
            self.axes[0].set_xlim(*want)  # shared by every axis
            changed = True
        for i, ax in enumerate(self.axes):
            ys = [np.asarray(lines[i].get_ydata(), float) for lines in self.lines.values()]
            ys = [y[np.isfinite(y) & ((y > 0) if ax.get_yscale() == "log" else True)] for y in ys]
            ys = [y for y in ys if y.size]
            if not ys:
                continue
            d_lo = min(float(y.min()) for y in ys)
            d_hi = max(float(y.max()) for y in ys)
            lo, hi = ax.get_ylim()
            if lo <= d_lo and d_hi <= hi:
                continue
            if ax.get_yscale() == "log":
                # a decade of headroom below (residuals fall): fewer full redraws
                new_lo = min(lo, 10.0 ** (np.floor(np.log10(d_lo)) - 1))
                new_hi = max(hi, 10.0 ** np.ceil(np.log10(d_hi)))
                if new_hi <= new_lo:
                    new_hi = new_lo * 10
            else:
                span = max(d_hi - d_lo, 1e-9 + 1e-6 * abs(d_hi))
                new_lo = min(lo, d_lo - 0.5 * span) if d_lo < lo else lo
                new_hi = max(hi, d_hi + 0.5 * span) if d_hi > hi else hi
            ax.set_ylim(new_lo, new_hi)
            changed = True
        return changed

    def _animated(self) -> list:
        return [a for lines in self.lines.values() for a in lines] + self.markers

    def _on_draw(self, event: object) -> None:
        """After a full draw: save the background, then paint lines and markers on it."""
        self.full_draws += 1
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        for artist in self._animated():
            self.figure.draw_artist(artist)

    def _redraw(self) -> None:
        self._background = None
        self.canvas.draw_idle()

    def _blit(self) -> None:
        """Repaint only the lines and markers over the saved background."""
        if self._background is None:
            self.canvas.draw_idle()  # a full draw is pending or needed; it paints the lines
            return
        self.canvas.restore_region(self._background)
        for artist in self._animated():
            self.figure.draw_artist(artist)
        self.canvas.blit(self.figure.bbox)

    def _legend(self) -> None:
        ax = self.axes[0]
        if len(self.lines) > 1:
            leg = ax.legend(fontsize=7, loc="best", framealpha=0.5)
            for text in leg.get_texts():
                text.set_color(self.axes[0].yaxis.label.get_color())
        elif ax.get_legend() is not None:
            ax.get_legend().remove()
