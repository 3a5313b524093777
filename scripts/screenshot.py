"""Save the screenshots in docs/: the explorer's Reconstruct, Compare or Train panel at work.

- ``--panel reconstruct`` (docs/screenshot.png): the brain MRI problem in the middle of a
  TV solve, with the change and error maps, the iterate stack and the curves;
- ``--panel compare`` (docs/screenshot-compare.png): TV, DnCNN and the DEQ prior on the same
  problem in napari's grid, the curves with their legend and the metrics table;
- ``--panel train`` (docs/screenshot-train.png): a short DEQ fine-tuning on MRI (a temporary
  checkpoint), caught mid-run with its loss and validation curves.

Run under a display, e.g. ``xvfb-run -a -s "-screen 0 1600x1100x24" python
scripts/screenshot.py --panel compare``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication
from skimage.io import imsave

from deq_explorer._napari.launch import open_explorer
from deq_explorer._napari.reconstruct import history_of

OUT = {
    "reconstruct": Path("docs/screenshot.png"),
    "compare": Path("docs/screenshot-compare.png"),
    "train": Path("docs/screenshot-train.png"),
}


def wait(condition: Callable[[], bool], timeout: float) -> None:
    end = time.perf_counter() + timeout
    while not condition() and time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def settle(turns: int = 30) -> None:
    for _ in range(turns):
        QApplication.processEvents()
        time.sleep(0.02)


def reconstruct(explorer, at: int) -> str:
    panel = explorer.reconstruct
    panel.max_iter.value = 150
    panel.tol.value = 0.0
    panel.record.value = True
    panel.every.value = 5
    panel.run()
    wait(lambda: panel.last is not None and panel.last.k >= at, 300)
    panel.runner.toggle_pause()  # hold the frame while the window repaints
    settle()
    panel.plot.set_series("run", history_of(panel.frames))
    panel.plot.repaint()
    return f"at iteration {panel.last.k}"


def compare(explorer, at: int) -> str:
    panel = explorer.compare
    explorer.tabs.setCurrentIndex(2)
    panel.set_ticked(["tv", "dncnn-mri", "deq-mri-radial10"])
    panel.max_iter.value = max(at, 10)
    panel.run()
    wait(lambda: not panel.runner.running, 900)
    settle(400)  # 8 s: the "finished" notification fades
    return panel.status.text()


def train(explorer, at: int) -> str:
    panel = explorer.train
    explorer.tabs.setCurrentIndex(3)
    for layer in explorer.problem.viewer.layers:  # the ground truth, not the k-space, behind
        layer.visible = layer.name == "brain"
    panel.steps.value = 60
    panel.val_every.value = 5
    panel.batch.value, panel.crop.value = 2, 48
    panel.out.value = Path(tempfile.mkdtemp()) / "screenshot.safetensors"
    panel.start()
    wait(lambda: len(panel.history.get("val_step", [])) >= max(at // 5, 3), 900)
    panel.runner.toggle_pause()
    settle()
    return panel.status.text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--panel", choices=sorted(OUT), default="reconstruct")
    parser.add_argument("--out", type=Path, help="default: docs/screenshot[-PANEL].png")
    parser.add_argument("--at", type=int, default=25,
                        help="iteration (or training step) to grab the window at")  # fmt: skip
    args = parser.parse_args()

    viewer = napari.Viewer(title="DEQ Explorer")
    viewer.window.resize(1500, 1040 if args.panel == "compare" else 920)  # Compare: its table
    explorer = open_explorer(viewer)  # the brain MRI problem, 10 % radial
    for layer in viewer.layers:  # the problem's mask and init(y), named after the problem
        if layer.name.startswith(("mask · ", "init(y) · ")):
            layer.visible = False
    said = {"reconstruct": reconstruct, "compare": compare, "train": train}[args.panel](
        explorer, args.at
    )
    QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    out = args.out or OUT[args.panel]
    out.parent.mkdir(parents=True, exist_ok=True)
    imsave(out, shot)
    print(f"saved {out} ({shot.shape[1]}×{shot.shape[0]}): {said}")
    for panel in (explorer.reconstruct, explorer.compare, explorer.train):
        panel.runner.shutdown()
    viewer.close()


if __name__ == "__main__":
    main()
