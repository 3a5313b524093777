"""Train (or finish training) every shipped model from its recipe, in dependency order.

Usage, from the repository root (nothing to install beyond torch and safetensors; the MRI
recipes also need nibabel and nilearn, for the MNI152 template)::

    PYTHONPATH=. python scripts/train_shipped.py [--device auto] [--only NAME ...] [--dry-run]

Each recipe (``deq_explorer/priors/shipped/**/*.toml``) is started after the recipes whose
checkpoints it starts from (``prior``, ``mcnet.backbone``). A checkpoint that already has
the recipe's steps is kept; one with fewer steps and its training state is resumed
(``--resume``): run the script again after an interruption, as often as needed. The device
flag overrides the recipes' ``device`` (they say ``cpu``, the machine they were written on).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from deq_explorer.priors.checkpoint import CheckpointError, read_metadata
from deq_explorer.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "deq_explorer" / "priors" / "shipped"


def recipes() -> dict[str, TrainConfig]:
    """Every shipped recipe by its model name."""
    out = {}
    for path in sorted(SHIPPED.rglob("*.toml")):
        config = TrainConfig.from_toml(path)
        out[config.name or Path(config.out).stem] = config
    return out


def order(configs: dict[str, TrainConfig]) -> list[str]:
    """Names sorted so that each comes after the recipes that write its starting checkpoints."""
    by_out = {str(Path(c.out)): name for name, c in configs.items()}

    def needs(c: TrainConfig) -> list[str]:
        starts = [c.prior, c.mcnet.backbone]
        return [by_out[s] for s in starts if s and str(Path(s)) in by_out]

    done: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise SystemExit(f"the shipped recipes depend on each other in a cycle at {name!r}")
        visiting.add(name)
        for dep in needs(configs[name]):
            visit(dep)
        visiting.discard(name)
        done.append(name)

    for name in configs:
        visit(name)
    return done


def state(config: TrainConfig) -> tuple[str, int]:
    """``("done" | "resume" | "start", steps so far)`` of a recipe's checkpoint."""
    path = ROOT / config.out
    if not path.is_file():
        return "start", 0
    try:
        meta = read_metadata(path)
    except CheckpointError:
        return "start", 0
    steps = int(meta.get("steps", 0))
    if not _same_recipe(meta.get("recipe") or {}, config.to_dict()):
        return "start", 0  # the recipe changed since: train afresh
    if steps >= config.steps:
        return "done", steps
    return ("resume", steps) if "train_state" in meta else ("start", 0)


def _same_recipe(stored: dict, current: dict) -> bool:
    """Whether a checkpoint's recipe is ``current`` (options added since count as defaults).

    A ``prior_sigma`` < 0 ("the base prior's") is stored resolved, so it matches any value.
    """
    keys = (set(stored) & set(current)) - {"device", "resume"}
    if current.get("prior_sigma", 0) < 0:
        keys.discard("prior_sigma")
    return bool(keys) and all(stored[k] == current[k] for k in keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--only", nargs="*", metavar="NAME", help="these models only")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, train nothing")
    args = parser.parse_args(argv)
    configs = recipes()
    unknown = sorted(set(args.only or ()) - set(configs))
    if unknown:
        print(f"unknown model(s) {unknown}; shipped: {', '.join(configs)}", file=sys.stderr)
        return 2
    for name in order(configs):
        if args.only and name not in args.only:
            continue
        config = configs[name]
        what, steps = state(config)
        recipe = next(SHIPPED.rglob(f"{Path(config.out).stem}.toml"))
        command = [sys.executable, "-m", "deq_explorer.cli", "train", "--config", str(recipe),
                   "--device", args.device]  # fmt: skip
        if what == "resume":
            command += ["--resume", config.out]
        print(f"{name}: {what}" + (f" at step {steps}" if steps else ""), flush=True)
        if what == "done" or args.dry_run:
            continue
        rc = subprocess.run(command, cwd=ROOT, check=False).returncode
        if rc != 0:
            print(f"{name}: train exited {rc}; run the script again to resume", file=sys.stderr)
            return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
