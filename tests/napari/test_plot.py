"""The dock plot: limits always hold the data, and streaming does not redraw the axes."""

from __future__ import annotations

import numpy as np
import pytest

from deq_explorer._napari._plot import Axis, CurvePlot


@pytest.fixture
def plot(qtbot):
    widget = CurvePlot(
        [Axis(key="residual", label="residual", log=True), Axis(key="psnr", label="PSNR")]
    )
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitUntil(lambda: widget.full_draws >= 1)
    return widget


def history(n: int) -> dict[str, list]:
    k = np.arange(1, n + 1)
    return {"k": k.tolist(), "residual": (0.5**k).tolist(), "psnr": (30 - 10 / k).tolist()}


def test_limits_hold_the_data_and_streaming_blits(plot, qtbot):
    plot.set_xmax(60)
    plot.clear()
    qtbot.waitUntil(lambda: plot._background is not None)
    draws = plot.full_draws
    for n in range(1, 61):
        plot.set_series("run", history(n))
        qtbot.wait(1)
        res_ax, psnr_ax = plot.axes
        h = history(n)
        assert res_ax.get_xlim() == (0.0, 60.0)
        lo, hi = res_ax.get_ylim()
        assert lo <= min(h["residual"]) and max(h["residual"]) <= hi
        assert np.log10(lo) == np.floor(np.log10(lo))  # whole decades
        lo, hi = psnr_ax.get_ylim()
        assert lo <= min(h["psnr"]) and max(h["psnr"]) <= hi
    qtbot.waitUntil(lambda: plot._background is not None)
    # 0.5**60 spans 18 decades, so the log axis grows a few times; the rest are blits
    assert plot.full_draws - draws < 25
    np.testing.assert_allclose(plot.data("run")["psnr"][1], history(60)["psnr"])


def test_marker_and_clear(plot, qtbot):
    plot.set_series("a", history(5))
    plot.set_series("b", history(8))
    assert plot.axes[0].get_legend() is not None
    plot.mark(3)
    assert plot.marked == 3
    plot.clear()
    assert plot.lines == {} and plot.marked is None and plot.axes[0].get_legend() is None
    assert plot.axes[0].get_xlim() == (0.0, 10.0)  # no xmax: the default range
    plot.set_series("c", history(25))
    assert plot.axes[0].get_xlim()[1] >= 25
