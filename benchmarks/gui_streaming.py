"""The cost of watching: one solve headless vs through the Reconstruct panel.

The panel streams every iteration (result, change and error layers, curves).
Prints the time ratio GUI/headless (target ≤ 1.15) and the longest event-loop
stall seen by a 5 ms QTimer during the GUI run (target ≤ 100 ms).

Run under a display: ``xvfb-run -a python benchmarks/gui_streaming.py``.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--prior", default="tv")
    parser.add_argument("--solver", default="pnp-pgm")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    viewer = napari.Viewer(title="DEQ Explorer benchmark")
    explorer = open_explorer(viewer)  # brain MRI 256², 10 % radial
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

    def gui() -> tuple[float, float]:
        for _ in range(20):
            app.processEvents()
        meter.start()
        t0 = time.perf_counter()
        panel.run()
        # wait in a real event loop (as the app does), not a busy processEvents() poll that
        # would compete with the worker for the CPU and the GIL
        loop, poll = QEventLoop(), QTimer()
        poll.setInterval(20)
        poll.timeout.connect(lambda: None if panel.runner.running else loop.quit())
        poll.start()
        loop.exec()
        poll.stop()
        seconds = time.perf_counter() - t0
        return seconds, meter.stop()

    headless()  # warm-up (allocations, first FFT plans)
    gui()  # warm-up: creates the result layers once (add_image, shaders), as a first Run does
    t_head, t_gui, stalls = [], [], []
    for _ in range(args.repeats):
        t_head.append(headless())
        seconds, stall = gui()
        t_gui.append(seconds)
        stalls.append(stall)
    out = {
        "image": "brain 256x256, mri:rate=0.1",
        "prior": args.prior,
        "solver": args.solver,
        "iterations": args.iters,
        "headless_s": min(t_head),
        "gui_s": min(t_gui),
        "ratio": min(t_gui) / min(t_head),
        "max_stall_ms": 1000 * max(stalls),
        "frames_streamed": len(panel.frames),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>16}: {v:.3f}" if isinstance(v, float) else f"{k:>16}: {v}")
    panel.runner.shutdown()
    viewer.close()


if __name__ == "__main__":
    main()
