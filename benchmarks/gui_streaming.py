"""The cost of watching: one solve headless vs through the Reconstruct panel.

The panel streams every iteration (result, change and error layers, curves).
Prints the time ratio GUI/headless (median over the repeats of each GUI run against the
headless run just before it; target ≤ 1.15) and the longest event-loop
stall seen by a 5 ms QTimer during a further GUI run of each repeat (target ≤ 100 ms).

Run under a display: ``xvfb-run -a python benchmarks/gui_streaming.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import napari
import torch
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication

from deq_explorer import api
from deq_explorer._napari import _problems
from deq_explorer._napari.launch import open_explorer


class StallMeter:
    """Longest gap between ticks of a 5 ms timer (the event loop's worst stall)."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = self.worst = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last)
        self.last = now

    def start(self) -> None:
        self.last, self.worst = time.perf_counter(), 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


class Breakdown:
    """Longest and total main-thread time of the usual suspects during the GUI runs.

    Wraps the panel's batch handler and its change/error-map update, reads the curves' paint
    times, times napari's OpenGL canvas draws (vispy draw events) and Python's garbage
    collections.
    """

    def __init__(self, panel, viewer) -> None:
        self.max: dict[str, float] = {}
        self.total: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.panel = panel
        self._wrap(panel.runner, "_on_batch", "panel: result layer, curves (a batch)")
        self._wrap(panel, "_show_maps", "panel: change and error layers")
        scene = viewer.window._qt_viewer.canvas._scene_canvas
        self._t0 = {}
        scene.events.draw.connect(lambda e: self._start("napari canvas draw"), position="first")
        scene.events.draw.connect(lambda e: self._end("napari canvas draw"), position="last")
        gc.callbacks.append(self._gc)

    def _start(self, key: str) -> None:
        self._t0[key] = time.perf_counter()

    def _end(self, key: str) -> None:
        if key in self._t0:
            self.add(key, time.perf_counter() - self._t0.pop(key))

    def _gc(self, phase: str, info: dict) -> None:
        key = f"gc generation {info['generation']}"
        self._start(key) if phase == "start" else self._end(key)

    def add(self, key: str, seconds: float) -> None:
        self.max[key] = max(self.max.get(key, 0.0), seconds)
        self.total[key] = self.total.get(key, 0.0) + seconds
        self.count[key] = self.count.get(key, 0) + 1

    def _wrap(self, obj, name: str, key: str) -> None:
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - t0)

        setattr(obj, name, timed)

    def report(self) -> str:
        plot = self.panel.plot
        self.max["curves: paint"] = plot.longest_paint
        self.total["curves: paint"] = plot.paint_seconds
        self.count["curves: paint"] = plot.paints
        rows = sorted(self.max, key=self.max.get, reverse=True)
        return "\n".join(
            f"{k:>32}: max {1e3 * self.max[k]:6.1f} ms, total {self.total[k]:6.2f} s, "
            f"{self.count[k]} calls"
            for k in rows
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--prior", default="tv")
    parser.add_argument("--solver", default="pnp-pgm")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--breakdown", action="store_true", help="time the GUI's main-thread parts (adds overhead)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    viewer = napari.Viewer(title="DEQ Explorer benchmark")
    explorer = open_explorer(viewer)  # brain MRI 256², 10 % radial
    gc.collect()
    gc.freeze()  # as `deq-explorer` does after opening the viewer
    panel = explorer.reconstruct
    y_layer = next(layer for layer in viewer.layers if _problems.is_measurement(layer))
    problem = _problems.problem_of(y_layer, viewer.layers)
    panel.measurement.value = y_layer
    panel.prior.choice.value, panel.solver.choice.value = args.prior, args.solver
    panel.max_iter.value, panel.tol.value = args.iters, 0.0
    app = QApplication.instance()
    meter = StallMeter()

    def headless() -> float:
        torch.set_grad_enabled(False)
        t0 = time.perf_counter()
        api.reconstruct(problem, prior=args.prior, solver=args.solver, max_iter=args.iters, tol=0.0)
        return time.perf_counter() - t0

    def gui(metered: bool) -> tuple[float, float]:
        """One GUI solve: its wall time and, if ``metered``, the longest event-loop stall."""
        for _ in range(20):
            app.processEvents()
        # wait in a real event loop (as the app does), woken only when the run ends: no
        # polling, which would compete with the worker for the GIL
        loop = QEventLoop()
        on_done = panel.runner._on_done
        panel.runner._on_done = lambda: (on_done(), loop.quit())
        if metered:
            meter.start()
        t0 = time.perf_counter()
        panel.run()
        loop.exec()
        seconds = time.perf_counter() - t0
        panel.runner._on_done = on_done
        return seconds, meter.stop() if metered else 0.0

    breakdown = Breakdown(panel, viewer) if args.breakdown else None
    headless()  # warm-up (allocations, first FFT plans)
    gui(True)  # warm-up: creates the result layers once (add_image, shaders), as a first Run does
    t_head, t_gui, stalls = [], [], []
    for _ in range(args.repeats):
        # the stall meter's 5 ms timer wakes the GUI thread 200 times a second, which a user's
        # session does not: the stall is measured on runs of its own, the ratio on unmetered ones
        t_head.append(headless())
        t_gui.append(gui(False)[0])
        stalls.append(gui(True)[1])
    out = {
        "image": "brain 256x256, mri:rate=0.1",
        "prior": args.prior,
        "solver": args.solver,
        "iterations": args.iters,
        "headless_s": statistics.median(t_head),
        "gui_s": statistics.median(t_gui),
        # each GUI run against the headless run just before it, so that drifts of the machine
        # hit both alike; the median and the range over the repeats
        "ratio": statistics.median(g / h for g, h in zip(t_gui, t_head, strict=True)),
        "ratio_range": [
            round(min(g / h for g, h in zip(t_gui, t_head, strict=True)), 3),
            round(max(g / h for g, h in zip(t_gui, t_head, strict=True)), 3),
        ],
        "max_stall_ms": 1000 * max(stalls),
        "frames_streamed": len(panel.frames),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>16}: {v:.3f}" if isinstance(v, float) else f"{k:>16}: {v}")
    if breakdown is not None:
        print(breakdown.report())
    panel.runner.shutdown()
    viewer.close()


if __name__ == "__main__":
    main()
