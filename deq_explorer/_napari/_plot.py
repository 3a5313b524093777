"""A light curve plot for a dock: stacked axes against iteration, painted with QPainter, themed
like napari.

Painting a few polylines and a dozen tick labels costs a few milliseconds, so the plot can follow
a running solve without taking the GUI thread (or the cores) from it; a matplotlib canvas spent
70–160 ms per redraw here under load.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from napari.utils.theme import get_theme
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["Axis", "CurvePlot", "nice_ticks"]

#: matplotlib's default colour cycle ("tab10"), so series keep the colours users know
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
_LEFT, _RIGHT, _TOP, _BOTTOM, _GAP = 58, 10, 8, 30, 10  # margins in pixels
_KEY, _SPACE = 14, 14  # a legend entry's line, and the space between entries


@dataclass(frozen=True, kw_only=True)
class Axis:
    """One panel of the plot: the history key it shows, its label and scale."""

    key: str
    label: str
    log: bool = False


@dataclass
class _Series:
    color: str
    x: np.ndarray
    y: dict[str, np.ndarray]


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 × 10^k apart) inside ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _limits(values: list[np.ndarray], log: bool) -> tuple[float, float]:
    """Axis limits holding every finite value: whole decades (log) or padded round numbers."""
    finite = [v[np.isfinite(v) & (v > 0 if log else True)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return (1e-3, 1.0) if log else (0.0, 1.0)
    lo = min(float(v.min()) for v in finite)
    hi = max(float(v.max()) for v in finite)
    if log:
        lo, hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return 10.0**lo, 10.0 ** max(hi, lo + 1)
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 1e-6)
    return lo - pad, hi + pad


class CurvePlot(QWidget):
    """Stacked axes sharing the iteration axis; one line per series per axis.

    ``set_series(name, history)`` draws ``history[axis.key]`` (a list with
    ``None`` where a value is unknown) against ``history["k"]``; ``mark(k)``
    draws a vertical marker (the iteration shown by napari's slider). Every
    change schedules one repaint (Qt merges requests between paints). With two or
    more series a legend sits above the axes, in rows as wide as the plot (it never
    covers a curve; :meth:`layout` gives its place and the axes').
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
        self.xlabel = xlabel
        self.lines: dict[str, _Series] = {}
        self._xmax: float | None = None
        self._marker: float | None = None
        self.paints = 0  # how many times the plot was painted, and for how long (benchmarks)
        self.paint_seconds = self.longest_paint = 0.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(90 * len(self.axes_spec) + 40)
        self.apply_theme(theme)

    # -- public API ---------------------------------------------------------------
    def apply_theme(self, theme: str) -> None:
        """Colour the plot with napari theme ``theme`` (``"dark"``, ``"light"`` ...)."""
        t = get_theme(theme)
        self._bg = QColor(t.canvas.as_hex())
        self._fg = QColor(t.text.as_hex())
        self._grid = QColor(self._fg)
        self._grid.setAlpha(50)
        self._highlight = QColor(t.highlight.as_hex())
        self.update()

    def clear(self) -> None:
        """Remove every series and the marker."""
        self.lines = {}
        self._marker = None
        self.update()

    def set_xlabel(self, label: str) -> None:
        """Name the shared x axis (``"iteration"``, ``"step"``, ``"image"`` …)."""
        self.xlabel = label
        self.update()

    def set_xmax(self, xmax: float | None) -> None:
        """Fix the x range to ``[0, xmax]`` (e.g. the iteration cap); ``None`` follows the data."""
        self._xmax = None if xmax is None else float(xmax)
        self.update()

    def set_series(self, name: str, history: dict[str, list], xkey: str = "k") -> None:
        """Show (or replace) series ``name`` from a history of lists."""
        xs = np.asarray(history.get(xkey, []), dtype=float)
        ys = {}
        for spec in self.axes_spec:
            y = np.array([np.nan if v is None else v for v in history.get(spec.key, [])], float)
            n = min(len(xs), len(y))
            ys[spec.key] = y[:n]
        color = self.lines[name].color if name in self.lines else PALETTE[len(self.lines) % 10]
        self.lines[name] = _Series(color, xs, ys)
        self.update()

    def data(self, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The plotted ``(x, y)`` arrays of series ``name`` by axis key."""
        s = self.lines[name]
        return {k: (s.x[: len(y)], y) for k, y in s.y.items()}

    def mark(self, x: float | None) -> None:
        """Draw the vertical marker at ``x`` (``None`` hides it)."""
        self._marker = None if x is None else float(x)
        self.update()

    @property
    def marked(self) -> float | None:
        return self._marker

    def xlim(self) -> tuple[float, float]:
        """The x range shown: ``[0, xmax]``, else ``[0, max(10, largest x)]``."""
        if self._xmax is not None:
            return 0.0, self._xmax
        top = max((float(np.nanmax(s.x)) for s in self.lines.values() if s.x.size), default=0.0)
        return 0.0, max(10.0, top)

    def ylim(self, index: int) -> tuple[float, float]:
        """The y range of axis ``index``."""
        spec = self.axes_spec[index]
        return _limits([s.y[spec.key] for s in self.lines.values()], spec.log)

    # -- layout -------------------------------------------------------------------
    def _font(self) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        return font

    def _legend(self, metrics: QFontMetricsF) -> list[tuple[str, QPointF]]:
        """Where each legend entry starts (its line; the text follows), in rows from the
        top left, wrapped at the plot's width; none for fewer than two series."""
        if len(self.lines) < 2:
            return []
        right = max(self.width() - _RIGHT, _LEFT + 1)
        x, y, out = float(_LEFT), _TOP + metrics.ascent(), []
        for name in self.lines:
            w = _KEY + 4 + metrics.horizontalAdvance(name)
            if x > _LEFT and x + w > right:
                x, y = float(_LEFT), y + metrics.height()
            out.append((name, QPointF(x, y)))
            x += w + _SPACE
        return out

    def layout(self) -> tuple[QRectF | None, list[QRectF]]:
        """The legend's bounding box (None without one) and each axis' box, in pixels."""
        metrics = QFontMetricsF(self._font())
        entries = self._legend(metrics)
        legend = None
        top = float(_TOP)
        if entries:
            bottom = entries[-1][1].y() + metrics.descent()
            width = max(p.x() + _KEY + 4 + metrics.horizontalAdvance(name) for name, p in entries)
            legend = QRectF(_LEFT, _TOP, width - _LEFT, bottom - _TOP)
            top = bottom + 6
        n = len(self.axes_spec)
        panel_h = max((self.height() - top - _BOTTOM - _GAP * (n - 1)) / n, 10.0)
        width = max(self.width() - _LEFT - _RIGHT, 10)
        return legend, [QRectF(_LEFT, top + i * (panel_h + _GAP), width, panel_h)
                        for i in range(n)]  # fmt: skip

    # -- painting -----------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        t0 = time.perf_counter()
        self.paints += 1
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.fillRect(self.rect(), self._bg)
            p.setFont(self._font())
            _, rects = self.layout()
            x0, x1 = self.xlim()
            n = len(self.axes_spec)
            for i, (spec, rect) in enumerate(zip(self.axes_spec, rects, strict=True)):
                self._paint_axis(p, rect, spec, self.ylim(i), (x0, x1), last=i == n - 1)
            self._paint_legend(p)
        finally:
            p.end()
            seconds = time.perf_counter() - t0
            self.paint_seconds += seconds
            self.longest_paint = max(self.longest_paint, seconds)

    def _paint_axis(self, p: QPainter, rect: QRectF, spec: Axis, ylim, xlim, last: bool) -> None:
        (x0, x1), (y0, y1) = xlim, ylim
        f = math.log10 if spec.log else float
        fy0, fy1 = f(y0), f(y1)

        def px(x: float) -> float:
            return rect.left() + (x - x0) / (x1 - x0 or 1.0) * rect.width()

        def py(y: float) -> float:
            return rect.bottom() - (f(y) - fy0) / (fy1 - fy0 or 1.0) * rect.height()

        grid, text = QPen(self._grid), QPen(self._fg)
        metrics = p.fontMetrics()
        # y ticks: decades on log axes (every other one when crowded), round numbers on linear
        if spec.log:
            decades = list(range(round(fy0), round(fy1) + 1))
            step = max(1, math.ceil(len(decades) / 4))
            yticks = [10.0**d for d in decades[::step]]
        else:
            yticks = nice_ticks(y0, y1, 3)
        for v in yticks:
            y = py(v)
            p.setPen(grid)
            p.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            p.setPen(text)
            label = f"1e{round(math.log10(v))}" if spec.log else f"{v:.4g}"
            w = metrics.horizontalAdvance(label)
            p.drawText(QPointF(rect.left() - w - 4, y + metrics.ascent() / 2 - 1), label)
        for v in nice_ticks(x0, x1, 5):
            x = px(v)
            p.setPen(grid)
            p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
            if last:
                p.setPen(text)
                label = f"{v:g}"
                w = metrics.horizontalAdvance(label)
                p.drawText(QPointF(x - w / 2, rect.bottom() + metrics.ascent() + 2), label)
        p.setPen(text)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(rect)
        # the axis label, rotated along the left edge
        p.save()
        p.translate(10, rect.center().y())
        p.rotate(-90)
        w = metrics.horizontalAdvance(spec.label)
        p.drawText(QPointF(-w / 2, metrics.ascent() / 2), spec.label)
        p.restore()
        if last:
            w = metrics.horizontalAdvance(self.xlabel)
            p.drawText(QPointF(rect.center().x() - w / 2, self.height() - 4), self.xlabel)
        # the curves, clipped to the panel, broken at unknown values
        p.save()
        p.setClipRect(rect)
        for s in self.lines.values():
            ys = s.y[spec.key]
            xs = s.x[: len(ys)]
            ok = np.isfinite(ys) & np.isfinite(xs) & ((ys > 0) if spec.log else True)
            p.setPen(QPen(QColor(s.color), 1.6))
            for run in np.split(np.arange(len(ys)), np.flatnonzero(~ok)):
                run = run[ok[run]]
                if run.size == 1:
                    p.drawPoint(QPointF(px(xs[run[0]]), py(ys[run[0]])))
                elif run.size > 1:
                    p.drawPolyline(QPolygonF([QPointF(px(xs[j]), py(ys[j])) for j in run]))
        if self._marker is not None:
            pen = QPen(self._highlight, 1.0, Qt.PenStyle.DashLine)
            p.setPen(pen)
            x = px(self._marker)
            p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        p.restore()

    def _paint_legend(self, p: QPainter) -> None:
        metrics = QFontMetricsF(p.font())
        for name, at in self._legend(metrics):
            mid = at.y() - metrics.ascent() / 3
            p.setPen(QPen(QColor(self.lines[name].color), 2.0))
            p.drawLine(QPointF(at.x(), mid), QPointF(at.x() + _KEY, mid))
            p.setPen(QPen(self._fg))
            p.drawText(QPointF(at.x() + _KEY + 4, at.y()), name)
