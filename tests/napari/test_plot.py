"""The dock plot: limits hold the data, ticks are round, painting is cheap and safe."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deq_explorer._napari._plot import Axis, CurvePlot, nice_ticks


@pytest.fixture
def plot(qtbot):
    axes = [Axis(key="residual", label="residual", log=True), Axis(key="psnr", label="PSNR")]
    widget = CurvePlot(axes)
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def history(n: int) -> dict[str, list]:
    k = np.arange(1, n + 1)
    return {"k": k.tolist(), "residual": (0.5**k).tolist(), "psnr": (30 - 10 / k).tolist()}


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.0, 1.0), (21.3, 33.7), (-0.004, 0.013), (5.0, 5.5), (0.0, 60.0)]
)
def test_nice_ticks_are_round_and_inside(lo, hi):
    ticks = nice_ticks(lo, hi, 4)
    assert 2 <= len(ticks) <= 9 and all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    steps = np.diff(ticks)
    np.testing.assert_allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6


def test_limits_hold_the_data_and_a_repaint_paints_once(plot, qtbot):
    plot.set_xmax(60)
    for n in range(1, 61):
        plot.set_series("run", history(n))
        h = history(n)
        assert plot.xlim() == (0.0, 60.0)
        lo, hi = plot.ylim(0)
        assert lo <= min(h["residual"]) and max(h["residual"]) <= hi
        assert math.log10(lo) == round(math.log10(lo))  # whole decades
        lo, hi = plot.ylim(1)
        assert lo <= min(h["psnr"]) and max(h["psnr"]) <= hi
    before = plot.paints
    plot.repaint()
    assert plot.paints == before + 1  # no timing here: speed belongs in benchmarks/
    np.testing.assert_allclose(plot.data("run")["psnr"][1], history(60)["psnr"])


def test_unknown_values_marker_series_and_clear(plot, qtbot):
    h = history(8)
    h["psnr"][3] = None  # unknown: a gap in the line, not a crash
    h["residual"][5] = float("nan")
    plot.set_series("a", h)
    plot.set_series("b", history(25))
    assert list(plot.lines) == ["a", "b"] and plot.lines["a"].color != plot.lines["b"].color
    assert np.isnan(plot.data("a")["psnr"][1][3])
    plot.mark(3)
    assert plot.marked == 3
    plot.repaint()  # legend, gaps and marker paint without error
    assert plot.xlim()[1] >= 25  # no xmax: follows the data
    plot.clear()
    assert plot.lines == {} and plot.marked is None and plot.xlim() == (0.0, 10.0)
    plot.apply_theme("light")
    plot.repaint()


@pytest.mark.parametrize("width", [700, 220])
def test_the_legend_sits_above_the_axes_and_covers_no_curve(plot, qtbot, width):
    """Compare's legend: in rows above the axes (wrapped in a narrow dock), never over them."""
    plot.resize(width, 300)
    assert plot.layout()[0] is None  # one series: no legend
    names = ["identity", "tv:weight=0.01", "dncnn-awgn", "deq-mri-radial10"]
    for name in names:
        plot.set_series(name, history(30))
    legend, axes = plot.layout()
    assert legend is not None and legend.width() > 0 and legend.height() > 0
    assert all(not legend.intersects(rect) for rect in axes)
    assert legend.bottom() < axes[0].top() and axes[-1].bottom() <= plot.height()
    assert legend.right() <= plot.width() and legend.left() >= 0
    line = plot.fontMetrics().height()
    assert (legend.height() > 1.5 * line) == (width < 300)  # a narrow plot wraps the names
    plot.repaint()  # and it paints
