"""Check the CUDA path and time it: ``python -m deq_explorer.gpu_check [--device cuda]``.

Runs from the source tree on a bare CUDA machine that has torch but cannot install anything
(``PYTHONPATH=. python3 -m deq_explorer.gpu_check``; ``scripts/gpu_check.sh`` does that and
runs the ``cuda``-marked tests when pytest is there). Three checks, each timed:

1. every built-in operator's adjoint identity ``<Ax, y> = <x, Aᵀy>`` in float64 on the device;
2. one solve per operator (``dncnn-awgn``, PnP-PGM, plain iteration) on the device and on the
   CPU: the two PSNRs agree to 0.05 dB;
3. a short DEQ training (implicit backward, Anderson) on the device: the loss stays finite and
   the checkpoint loads.

Exit code 0 when every check passes, 1 otherwise. The tests run the same functions on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["Check", "check_adjoints", "check_solves", "check_training", "main"]

#: (operator spec, image shape) of each built-in operator's check
OPERATORS = (
    ("denoise", (1, 64, 64)),
    ("deblur:sigma=1.6", (1, 64, 64)),
    ("sr:scale=2", (1, 64, 64)),
    ("sr-bicubic:scale=2", (1, 64, 64)),
    ("inpaint:p=0.5", (1, 64, 64)),
    ("mri:rate=0.3", (1, 64, 64)),
)


@dataclass(frozen=True)
class Check:
    """One check's outcome: what, on which device, pass or fail, a figure, seconds."""

    name: str
    device: str
    ok: bool
    detail: str
    seconds: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_adjoints(device: torch.device) -> list[Check]:
    """``|<Ax, y> − <x, Aᵀy>| / (‖Ax‖‖y‖) < 1e-10`` in float64 for every operator."""
    from deq_explorer.registry import operators

    out = []
    g = torch.Generator().manual_seed(0)
    for spec, shape in OPERATORS:
        t0 = time.perf_counter()
        op = operators.build(spec, shape=shape, device=device, dtype=torch.float64)
        x = torch.rand((2, *shape), generator=g, dtype=torch.float64).to(device)
        ax = op.A(x)
        y = torch.randn(ax.shape, generator=g, dtype=torch.float64).to(device)
        if ax.is_complex():
            y = torch.complex(y, torch.randn(y.shape, generator=g, dtype=torch.float64).to(device))
        lhs = torch.vdot(ax.flatten(), y.flatten()).real
        rhs = torch.vdot(x.flatten(), op.A_adjoint(y).flatten()).real
        err = float((lhs - rhs).abs() / (ax.norm() * y.norm()))
        _sync(device)
        out.append(Check(f"adjoint {spec}", device.type, err < 1e-10, f"rel. error {err:.1e}",
                         time.perf_counter() - t0))  # fmt: skip
    return out


def _image(side: int) -> np.ndarray:
    from deq_explorer.images import center_crop, load_sample

    return center_crop(load_sample("camera").astype(np.float32), side)


def check_solves(device: torch.device, side: int = 128, iterations: int = 20) -> list[Check]:
    """One ``dncnn-awgn`` PnP-PGM solve per operator on ``device`` against the same on the CPU."""
    from deq_explorer import api

    out = []
    image = _image(side)
    for spec, _ in OPERATORS:
        psnr = {}
        seconds = 0.0
        for where in dict.fromkeys(["cpu", device.type]):
            problem = api.simulate(image, spec, noise=0.01, seed=0, device=where)
            api.reconstruct(problem, prior="dncnn-awgn", max_iter=2, tol=0)  # warm-up
            _sync(torch.device(where))
            solution = api.reconstruct(problem, prior="dncnn-awgn", max_iter=iterations, tol=0)
            _sync(torch.device(where))
            psnr[where] = float(solution.history["psnr"][-1])
            seconds = solution.seconds
        gap = abs(psnr["cpu"] - psnr[device.type])
        out.append(Check(f"solve {spec}", device.type, gap < 0.05 and np.isfinite(psnr["cpu"]),
                         f"{psnr[device.type]:.2f} dB ({gap:.3f} dB from CPU), "
                         f"{1000 * seconds / iterations:.1f} ms/iter at {side}²",
                         seconds))  # fmt: skip
    return out


def check_training(device: torch.device, steps: int = 5, crop: int = 32) -> list[Check]:
    """A few DEQ training steps (implicit backward) on ``device``; the checkpoint loads."""
    import skimage.io

    from deq_explorer.priors.checkpoint import load_checkpoint
    from deq_explorer.training import TrainConfig
    from deq_explorer.training.events import DoneEvent, FailedEvent, StepEvent
    from deq_explorer.training.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        image = _image(128)[0]
        for i in range(4):  # four distinct crops of one photo: enough to take steps
            top, left = 32 * (i // 2), 32 * (i % 2)
            tile = image[top : top + 96, left : left + 96]
            skimage.io.imsave(
                data / f"{i}.png", (tile * 255).astype(np.uint8), check_contrast=False
            )
        config = TrainConfig(mode="deq", prior="dncnn-awgn", data=str(data), crop=crop, batch=2,
                             steps=steps, val_images=1, val_crop=64, max_iter=30,
                             backward_max_iter=30, out=str(Path(tmp) / "p.safetensors"),
                             device=device.type)  # fmt: skip
        t0 = time.perf_counter()
        losses, step_seconds, failure = [], [], ""
        for ev in train(config):
            if isinstance(ev, StepEvent):
                losses.append(ev.loss)
                step_seconds.append(ev.seconds)
            elif isinstance(ev, FailedEvent):
                failure = ev.message
            elif isinstance(ev, DoneEvent):
                load_checkpoint(ev.path)
        total = time.perf_counter() - t0
    ok = not failure and len(losses) == steps and all(np.isfinite(losses))
    per_step = np.median(step_seconds[1:] or step_seconds) if step_seconds else float("nan")
    detail = failure or f"{steps} steps, loss {losses[-1]:.3g}, {1000 * per_step:.0f} ms/step"
    return [Check(f"DEQ training {crop}²×2", device.type, ok, detail, total)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deq_explorer.gpu_check",
                                     description=__doc__.split("\n")[0])  # fmt: skip
    parser.add_argument("--device", default="cuda", help="device to check (default cuda)")
    parser.add_argument("--json", action="store_true", help="one JSON line per check")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device here (torch.cuda.is_available() is False)", file=sys.stderr
        )
        return 1
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__} on {name}", file=sys.stderr)
    checks = [*check_adjoints(device), *check_solves(device), *check_training(device)]
    for c in checks:
        if args.json:
            print(json.dumps(c.__dict__))
        else:
            print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<28} {c.detail}  [{c.seconds:.2f} s]")
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
