"""Save docs/screenshot.png: the explorer in the middle of a solve.

Run under a display, e.g. ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication
from skimage.io import imsave

from deq_explorer._napari.launch import open_explorer
from deq_explorer._napari.reconstruct import history_of


def wait(condition, timeout: float) -> None:
    end = time.perf_counter() + timeout
    while not condition() and time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshot.png"))
    parser.add_argument("--at", type=int, default=25, help="iteration to grab the window at")
    args = parser.parse_args()

    viewer = napari.Viewer(title="DEQ Explorer")
    viewer.window.resize(1500, 920)
    explorer = open_explorer(viewer)  # the brain MRI problem, 10 % radial
    panel = explorer.reconstruct
    for layer in viewer.layers:  # the problem's mask and init(y), named after the problem
        if layer.name.startswith(("mask · ", "init(y) · ")):
            layer.visible = False
    panel.max_iter.value = 150
    panel.tol.value = 0.0
    panel.record.value = True
    panel.every.value = 5
    panel.run()
    wait(lambda: panel.last is not None and panel.last.k >= args.at, 300)
    panel.runner.toggle_pause()  # hold the frame while the window repaints
    for _ in range(30):
        QApplication.processEvents()
        time.sleep(0.02)
    panel.plot.set_series("run", history_of(panel.frames))
    panel.plot.repaint()
    QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    imsave(args.out, shot)
    print(f"saved {args.out} at iteration {panel.last.k} ({shot.shape[1]}×{shot.shape[0]})")
    panel.runner.shutdown()
    viewer.close()


if __name__ == "__main__":
    main()
