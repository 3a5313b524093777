"""The GUI thread's longest stall during each panel action, at 256² and 1024².

A 10 ms heartbeat QTimer in the GUI thread records when it fires; the largest gap between
two ticks while an action runs (from pressing its button until the panel is idle again,
its layers added) is the action's stall. The target (issue 15): none above 100 ms.

Actions, on the brain slice resized to N²:

- simulate: Problem panel, ``mri:rate=0.3``, noise 0.01 (the measurement, mask and
  ``init(y)`` layers added);
- reconstruct: TV, 30 iterations, every iterate streamed and recorded into the stack;
- compare: identity and TV, 10 iterations each, in grid mode;
- train: Train panel, ``awgn``, 3 steps of batch 2 at crop N/4 on four N² images;
- stack simulate / stack run: 8 images of N² ("every slice"), then TV, 5 iterations.

Run under a display, e.g. ``xvfb-run -a -s "-screen 0 1600x1100x24" python
benchmarks/gui_stalls.py [--sizes 256 1024] [--json]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication
from skimage.io import imsave
from skimage.transform import resize

from deq_explorer._napari.launch import open_explorer
from deq_explorer.images import load_image
from deq_explorer.registry import priors

ACTIONS = ["simulate", "reconstruct", "compare", "train", "stack simulate", "stack run"]


class Heartbeat:
    """Ticks every ``ms`` in the GUI thread; :meth:`stop` gives the longest gap between two."""

    def __init__(self, ms: int = 10) -> None:
        self.timer = QTimer()
        self.timer.setInterval(ms)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self.last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def start(self) -> None:
        self.gaps, self.last = [], time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        self._tick()  # up to the end of the action
        return self.gaps


class Attribution:
    """The longest single GUI-thread call of each kind during an action (``--breakdown``).

    Kinds: napari's canvas draws (vispy draw events), layer adds (napari's layer list
    inserting one, with its controls and visual), each panel's batch handler (what arrived
    from its worker) and end-of-job handler, and Python's garbage collections. Wrapping
    adds a little overhead.
    """

    def __init__(self, viewer, panels: dict) -> None:
        self.max: dict[str, float] = {}
        self._t0: dict[str, float] = {}
        scene = viewer.window._qt_viewer.canvas._scene_canvas
        scene.events.draw.connect(lambda e: self._start("canvas draw"), position="first")
        scene.events.draw.connect(lambda e: self._end("canvas draw"), position="last")
        layers = viewer.layers.events  # a layer added: from "inserting" to the last "inserted"
        layers.inserting.connect(lambda e: self._start("napari layer add"))
        layers.inserted.connect(lambda e: self._end("napari layer add"), position="last")
        for name, panel in panels.items():
            self._wrap(panel.runner, "_on_batch", f"{name}: batch handler")
            self._wrap(panel.runner, "_on_done", f"{name}: end handler")
        gc.callbacks.append(
            lambda phase, info: (self._start if phase == "start" else self._end)("gc")
        )

    def _start(self, key: str) -> None:
        self._t0[key] = time.perf_counter()

    def _end(self, key: str) -> None:
        if key in self._t0:
            self.max[key] = max(self.max.get(key, 0.0), time.perf_counter() - self._t0.pop(key))

    def _wrap(self, obj, name: str, key: str) -> None:
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            self._start(key)
            try:
                return inner(*args, **kwargs)
            finally:
                self._end(key)

        setattr(obj, name, timed)

    def take(self) -> dict[str, float]:
        """The longest call of each kind (ms) since the last take, longest first."""
        out, self.max = self.max, {}
        return {k: round(1e3 * v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def until(done: Callable[[], bool], timeout: float = 900.0) -> None:
    """Run the Qt event loop (as the app does) until ``done()``, checked every 20 ms."""
    loop, end = QEventLoop(), time.perf_counter() + timeout
    check = QTimer()
    check.setInterval(20)
    check.timeout.connect(lambda: (done() or time.perf_counter() > end) and loop.quit())
    check.start()
    loop.exec()
    check.stop()


def settle() -> None:
    """Let the window finish what an earlier action left (repaints, thumbnails)."""
    app = QApplication.instance()
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--actions", nargs="+", default=ACTIONS, help="actions of later passes")
    parser.add_argument(
        "--passes",
        type=int,
        default=2,
        help="run every action this many times per size (the first is cold)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also the longest call of each kind (canvas draw, layer add ...)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    viewer = napari.Viewer(title="DEQ Explorer: GUI stalls")
    viewer.window.resize(1500, 1000)
    explorer = open_explorer(viewer, sample=None)
    gc.collect()
    gc.freeze()  # as `deq-explorer` does after opening the viewer
    problem, rec, compare, train = (
        explorer.problem, explorer.reconstruct, explorer.compare, explorer.train
    )  # fmt: skip
    beat, rows = Heartbeat(10), []
    panels = {"problem": problem, "reconstruct": rec, "compare": compare, "train": train}
    attribution = Attribution(viewer, panels) if args.breakdown else None
    brain = load_image("sample:brain")[0]
    work = Path(tempfile.mkdtemp(prefix="gui_stalls_"))

    where = {"size": 0, "pass": 0}  # of the actions measured now

    def measure(action: str, start: Callable[[], object], busy: Callable[[], bool]) -> None:
        size, pass_ = where["size"], where["pass"]
        if pass_ and action not in args.actions:
            return
        settle()
        if attribution is not None:
            attribution.take()
        beat.start()
        t0 = time.perf_counter()
        start()
        until(lambda: not busy())
        seconds = time.perf_counter() - t0
        gaps = beat.stop()
        row = {"action": action, "size": size, "pass": pass_ + 1, "seconds": round(seconds, 2),
               "max_stall_ms": round(1e3 * max(gaps), 1),
               "stalls_over_100ms": sum(g > 0.1 for g in gaps)}  # fmt: skip
        if attribution is not None:
            row["longest_calls_ms"] = attribution.take()
        rows.append(row)
        if not args.json:
            print(f"{action:>16} {size:>5}² #{pass_ + 1}: longest stall "
                  f"{row['max_stall_ms']:7.1f} ms, {row['stalls_over_100ms']} over 100 ms, "
                  f"{seconds:6.2f} s", flush=True)  # fmt: skip
            if attribution is not None:
                print(f"{'':>26}{row['longest_calls_ms']}", flush=True)

    for size, pass_ in ((size, p) for size in args.sizes for p in range(args.passes)):
        where["size"], where["pass"] = size, pass_
        image = resize(brain, (size, size), order=1).astype(np.float32)
        truth = viewer.add_image(image, name=f"brain {size}²", contrast_limits=(0.0, 1.0))
        explorer.reset_choices()

        problem.image.value = truth
        problem.whole.value = False
        problem.operator.set_spec("mri:rate=0.3")
        measure("simulate", problem.simulate, lambda: problem.busy)

        rec.reset_choices()
        rec.measurement.value = problem.measurement
        rec.prior.choice.value = "tv"
        rec.max_iter.value, rec.tol.value = 30, 0.0
        rec.record.value, rec.every.value = True, 1
        measure("reconstruct", rec.run, lambda: rec.runner.running)

        compare.reset_choices()
        compare.measurement.value = problem.measurement
        compare.set_ticked(["identity", "tv"])
        compare.max_iter.value, compare.tol.value = 10, 0.0
        measure("compare", compare.run, lambda: compare.runner.running)
        compare.restore_view()

        data = work / f"images{size}"
        data.mkdir(exist_ok=True)
        for i in range(4):
            imsave(data / f"im{i}.png", (np.roll(image, 37 * i, axis=1) * 255).astype(np.uint8))
        train.mode.value, train.data.value = "awgn", data
        train.steps.value, train.val_every.value = 3, 3
        train.batch.value, train.crop.value = 2, size // 4
        train.device.value = "cpu"
        train.out.value = work / f"prior{size}.safetensors"
        measure("train", train.start, lambda: train.runner.running)
        if train.registered in priors:
            priors.unregister(train.registered)

        volume = np.stack([image * (0.6 + 0.05 * i) for i in range(8)])
        stack = viewer.add_image(volume, name=f"stack {size}²", contrast_limits=(0.0, 1.0))
        explorer.reset_choices()
        problem.image.value = stack
        problem.whole.value = True
        measure("stack simulate", problem.simulate, lambda: problem.busy)
        rec.reset_choices()
        rec.measurement.value = problem.measurement
        rec.record.value = False
        rec.max_iter.value = 5
        measure("stack run", rec.run, lambda: rec.runner.running)
        viewer.layers.clear()

    if args.json:
        print(json.dumps(rows))
    viewer.close()


if __name__ == "__main__":
    main()
