"""Recipes (TOML), the CLI, the data pipeline, the MCNet map and a 2-process DDP run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deq_explorer.fixedpoint.admm import mcnet_layer
from deq_explorer.fixedpoint.base import StopRule
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.checkpoint import load_checkpoint
from deq_explorer.registry import operators, priors, solvers
from deq_explorer.training import ConfigError, TrainConfig
from deq_explorer.training.cli import main
from deq_explorer.training.data import ImageData, load_images


def test_toml_recipe(tmp_path: Path) -> None:
    p = tmp_path / "r.toml"
    p.write_text(
        'mode = "multitask"\ncrop = 48\nnoise = [0.01, 0.02]\nmilestones = [10, 20]\n'
        "net = { depth = 4, width = 8 }\n[multitask]\ndraws = 3\nsr_scales = [1, 2]\n"
        "[mcnet]\nbeta = 2\n"
    )
    c = TrainConfig.from_toml(p)
    assert c.mode == "multitask" and c.crop == 48 and c.noise == (0.01, 0.02)
    assert c.milestones == (10, 20) and c.net == {"depth": 4, "width": 8}
    assert c.multitask.draws == 3 and c.multitask.sr_scales == (1, 2) and c.mcnet.beta == 2.0
    assert TrainConfig.from_dict(c.to_dict()) == c
    p.write_text('mode = "deq"\ncrop_size = 3\n')
    with pytest.raises(ConfigError, match=r"unknown option.*crop_size.*known.*crop"):
        TrainConfig.from_toml(p)
    p.write_text('crop = "big"\n')
    with pytest.raises(ConfigError, match="crop: expected int"):
        TrainConfig.from_toml(p)
    p.write_text("crop = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml(p)
    with pytest.raises(ConfigError, match="no config file"):
        TrainConfig.from_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"mode": "gan"}, "unknown training mode"),
        ({"backward": "exact"}, "implicit or jfb"),
        ({"mode": "mismatched"}, "eval_operator"),
        ({"mode": "multitask", "crop": 64}, "divisible by every SR scale"),
        ({"noise_range": (0.2, 0.1)}, "noise_range"),
        ({"out": "x.pt"}, ".safetensors"),
        ({"milestones": (5, 2)}, "milestones"),
    ],
)
def test_bad_recipes(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kw)


def test_data_folder_split_and_determinism(image_dir: Path) -> None:
    names = [n for n, _ in load_images(str(image_dir), 3)]
    assert names == ["im0.png", "im1.png", "im2.png", "sub/rgb.png"]
    gray = dict(load_images(str(image_dir), 1))
    assert gray["sub/rgb.png"].shape == (1, 40, 48) and gray["im0.png"].dtype == torch.float32
    data = ImageData.load(str(image_dir), channels=1, crop=16, val_images=1, val_crop=32, seed=3)
    assert len(data.train) == 3 and data.val.shape == (1, 1, 32, 32)
    assert set(data.names) | set(data.val_names) == set(names)
    b1 = data.batch(5, batch=4, crop=16, seed=3)
    assert b1.shape == (4, 1, 16, 16) and torch.equal(b1, data.batch(5, batch=4, crop=16, seed=3))
    assert not torch.equal(b1, data.batch(6, batch=4, crop=16, seed=3))
    shard = [
        ImageData.load(
            str(image_dir),
            channels=1,
            crop=16,
            val_images=1,
            val_crop=32,
            seed=3,
            rank=r,
            world_size=2,
        ).names
        for r in (0, 1)
    ]
    assert not set(shard[0]) & set(shard[1]) and set(shard[0]) | set(shard[1]) == set(data.names)
    with pytest.raises(ValueError, match="need more than val_images"):
        ImageData.load(str(image_dir), channels=1, crop=16, val_images=4, val_crop=16, seed=0)
    with pytest.raises(ValueError, match="no png/jpg/tif"):
        load_images(str(_empty(image_dir)), 1)


def _empty(image_dir: Path) -> Path:
    d = image_dir.parent / "empty"
    d.mkdir(exist_ok=True)
    return d


def test_builtin_photos_load() -> None:
    images = load_images("builtin", 1)
    names = {name for name, _ in images}
    assert len(images) == 15
    assert not names & {"camera", "astronaut", "brain", "phantom"}  # held out for evaluation
    assert all(x.shape[0] == 1 and 0 <= float(x.min()) and float(x.max()) <= 1 for _, x in images)


def test_mcnet_layer_with_tensor_beta_matches_the_solver_registry() -> None:
    op = operators.build("sr-bicubic:scale=2", shape=(1, 16, 16))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 16, generator=g)
    y = op.A(x)
    prior = DenoiserPrior(lambda u, s: 0.9 * u, sigma=0.0)
    ref = solvers.build("mcnet-admm:beta=0.7,rho=1.3,eps=0.0", op=op, prior=prior, y=y)
    ours = mcnet_layer(op, prior, y, op.init(y), beta=torch.tensor(0.7), rho=1.3, eps=0.0)
    z = torch.rand(ref.z0.shape, generator=g)
    torch.testing.assert_close(ours.T(z), ref.T(z))
    torch.testing.assert_close(ours.z0, ref.z0)
    assert StopRule()  # the records it feeds come from the same engine


def test_cli_trains_and_registers(image_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.safetensors"
    rc = main([
        "--mode", "awgn", "--data", str(image_dir), "--crop", "16", "--batch", "2", "--steps",
        "2", "--val-images", "1", "--val-crop", "16", "--net", '{"depth": 3, "width": 8}',
        "--out", str(out), "--name", "cli-test-prior", "--device", "cpu", "--quiet",
    ])  # fmt: skip
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished" and result["prior"] == "cli-test-prior"
    assert "cli-test-prior" in priors.names()
    priors.unregister("cli-test-prior")
    assert main(["--mode", "awgn", "--data", str(tmp_path / "none"), "--quiet"]) == 2
    assert (
        "is neither 'builtin', 'mni152', a volume file nor an existing folder"
        in capsys.readouterr().err
    )
    assert main(["--crop", "0"]) == 2


def test_a_resumed_run_shows_its_own_step_count(image_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bar.safetensors"
    args = ["--mode", "awgn", "--data", str(image_dir), "--crop", "16", "--batch", "2",
            "--val-images", "1", "--val-crop", "16", "--net", '{"depth": 3, "width": 8}',
            "--device", "cpu", "--no-register"]  # fmt: skip
    assert main([*args, "--steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*args, "--steps", "3", "--resume", str(out), "--out", str(out)]) == 0
    bar = capsys.readouterr().err.replace("\r", "\n")
    assert "3/3" in bar and "1/3" not in bar  # one step run, shown from step 2 on


def test_cli_mode_choices_are_the_trainers_modes(capsys) -> None:
    from deq_explorer.training import modes

    with pytest.raises(SystemExit) as done:
        main(["--mode", "backbone", "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    assert all(mode in help_text for mode in modes.names())
    with pytest.raises(SystemExit) as done:
        main(["--mode", "nonsense"])
    assert done.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_registered_mode_is_offered_by_the_cli_and_the_recipe(capsys) -> None:
    from deq_explorer.training import modes
    from deq_explorer.training.loop import default_arch
    from deq_explorer.training.tasks import AWGNTask

    class Coarse(AWGNTask):
        """AWGN pretraining of a U-Net on crops that are multiples of 8."""

        arch = "unet"

        @classmethod
        def check(cls, config: TrainConfig) -> None:
            if config.crop % 8:
                raise ConfigError("mode 'test-coarse' needs crops that are multiples of 8")

    with pytest.raises(ConfigError, match="unknown training mode 'test-coarse'"):
        TrainConfig(mode="test-coarse")
    modes.register("test-coarse", Coarse)
    try:
        config = TrainConfig(mode="test-coarse")
        assert default_arch(config) == "unet"
        with pytest.raises(ConfigError, match="multiples of 8"):
            TrainConfig(mode="test-coarse", crop=12)
        with pytest.raises(SystemExit) as done:
            main(["--mode", "test-coarse", "--help"])
        assert done.value.code == 0 and "test-coarse" in capsys.readouterr().out
        assert main(["--mode", "test-coarse", "--crop", "12"]) == 2  # the mode's own check
        assert "multiples of 8" in capsys.readouterr().err
    finally:
        modes.unregister("test-coarse")
    with pytest.raises(SystemExit):
        main(["--mode", "test-coarse"])
    assert "invalid choice: 'test-coarse'" in capsys.readouterr().err


def test_multitask_draws_typed_operators_and_records_specs() -> None:
    from deq_explorer.training import MultiTaskConfig
    from deq_explorer.training.tasks import MultiTask, build_task

    mt = MultiTaskConfig(sr_scales=(1, 2), blur_sigmas=(2.0,), drop_rates=(0.5,))
    config = TrainConfig(mode="multitask", crop=24, val_crop=24, multitask=mt)
    task = build_task(config, torch.nn.Identity(), torch.device("cpu"))
    assert isinstance(task, MultiTask)
    assert task.metadata()["operators"] == ["denoise", "sr-bicubic:scale=2", "deblur:sigma=2",
                                            "inpaint:p=0.5"]  # fmt: skip
    g = torch.Generator().manual_seed(0)
    draws = [task.draw(g) for _ in range(12)]
    assert {d.operator for d in draws} == {"denoise", "sr-bicubic", "deblur", "inpaint"}
    for d in draws:  # a fresh random mask per inpainting draw, nothing else seeded
        assert ("seed" in d.options) == (d.operator == "inpaint")
        assert task.operator(d, (1, 24, 24)).x_shape == (1, 24, 24)


def test_ddp_two_processes_write_one_checkpoint(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp" / "p.safetensors"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "deq_explorer.training.cli", "--mode", "awgn", "--data", str(image_dir),
        "--crop", "16", "--batch", "1", "--steps", "2", "--val-images", "1", "--val-crop", "16",
        "--net", '{"depth": 3, "width": 8}', "--out", str(out), "--device", "cpu",
        "--no-register", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.best.safetensors", "p.safetensors"]
    _, meta = load_checkpoint(out)
    assert meta["processes"] == 2 and meta["steps"] == 2
    assert meta["data"]["train_images"] == 3  # sharded 2 + 1 over the two processes
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "finished"
