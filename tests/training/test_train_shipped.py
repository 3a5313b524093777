"""scripts/train_shipped.py: each shipped model is its recipe run to the end, in order."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "train_shipped", ROOT / "scripts" / "train_shipped.py"
)
train_shipped = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_shipped)  # a script, not a package module


def test_recipes_run_after_the_checkpoints_they_start_from() -> None:
    configs = train_shipped.recipes()
    plan = train_shipped.order(configs)
    assert sorted(plan) == sorted(configs)
    for name, config in configs.items():
        for start in (config.prior, config.mcnet.backbone):
            maker = [n for n, c in configs.items() if start and Path(c.out) == Path(start)]
            assert all(plan.index(m) < plan.index(name) for m in maker), (name, maker)
    assert plan.index("dncnn-awgn") < plan.index("dncnn-mri") < plan.index("deq-mri-radial10")


def test_every_shipped_checkpoint_is_its_recipe_trained_to_the_end(capsys) -> None:
    assert train_shipped.main(["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(train_shipped.recipes())
    assert all(": done at step " in line for line in lines), lines


def test_a_changed_or_unfinished_recipe_is_trained_or_resumed(tmp_path: Path, monkeypatch) -> None:
    import dataclasses

    config = train_shipped.recipes()["dncnn-awgn"]
    assert train_shipped.state(config)[0] == "done"
    assert train_shipped.state(dataclasses.replace(config, lr=config.lr / 2))[0] == "start"
    assert train_shipped.state(dataclasses.replace(config, steps=config.steps + 1))[0] in (
        "resume", "start",
    )  # fmt: skip
    missing = dataclasses.replace(config, out=str(tmp_path / "none.safetensors"))
    assert train_shipped.state(missing) == ("start", 0)
    assert train_shipped.main(["--only", "no-such-model", "--dry-run"]) == 2
