"""Training never loses or corrupts a model: one-file state, kills, divergence, strict JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deq_explorer.atomic import atomic_write, temporaries
from deq_explorer.priors.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state,
    read_metadata,
)
from deq_explorer.training import CheckpointEvent, DoneEvent, TrainConfig, best_path, train
from deq_explorer.training import loop as training_loop
from deq_explorer.training.cli import EXIT_DIVERGED, main

TINY = {"depth": 3, "width": 8}


def config(image_dir: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(mode="awgn", noise=(0.05,), data=str(image_dir), crop=16, batch=2, steps=3,
                val_images=1, val_crop=16, val_every=1, net=TINY, out=str(out), lr=1e-3,
                device="cpu")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_weights_and_state_are_one_file(image_dir: Path, tmp_path: Path) -> None:
    c = config(image_dir, tmp_path / "p.safetensors")
    events = list(train(c))
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.best.safetensors", "p.safetensors"]
    meta = read_metadata(c.out)
    assert meta["train_state"]["step"] == meta["steps"] == 3
    state = load_state(c.out)
    assert any(k.startswith("opt/") and k.endswith("/exp_avg") for k in state)
    assert load_state(best_path(c.out)) == {}  # the best weights carry no optimizer state
    # resuming continues at the stored step, with Adam's moments restored
    more = list(train(dataclasses.replace(c, steps=5, resume=c.out)))
    assert [e.step for e in more if type(e).__name__ == "StepEvent"] == [4, 5]


def test_stale_temporaries_are_removed_by_the_next_run(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.safetensors"
    c = config(image_dir, out, steps=1)
    list(train(c))
    for target in (out, best_path(out)):  # what kill -9 inside atomic_write leaves
        with pytest.raises(KeyboardInterrupt), atomic_write(target) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    (tmp_path / f".{out.name}.abc123.tmp").write_bytes(b"left by a killed writer")
    (tmp_path / ".other.safetensors.x.tmp").write_bytes(b"not ours")
    assert len(temporaries(out)) == 1
    list(train(dataclasses.replace(c, steps=2, resume=str(out))))
    assert temporaries(out) == [] and temporaries(best_path(out)) == []
    assert (tmp_path / ".other.safetensors.x.tmp").exists()  # another file's: left alone


def test_a_diverging_run_keeps_the_last_good_checkpoint(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.safetensors"
    healthy = config(image_dir, out, steps=2)
    list(train(healthy))
    before = out.read_bytes(), best_path(out).read_bytes()
    blown = dataclasses.replace(healthy, steps=6, lr=1e4, resume=str(out))  # weights explode
    events = list(train(blown))
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "diverged"
    assert "largest weight grew" in done.message and "kept" in done.message
    assert "lr=" in done.message
    assert not [e for e in events if isinstance(e, CheckpointEvent)]
    assert (out.read_bytes(), best_path(out).read_bytes()) == before
    # and the kept checkpoint still resumes
    again = list(train(dataclasses.replace(healthy, steps=3, resume=str(out))))
    assert again[-1].status == "finished" and again[-1].step == 3


def test_a_nan_loss_ends_as_diverged_with_strict_json(
    image_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    real = training_loop.build_task

    def nan_after_one_step(*args, **kwargs):
        task = real(*args, **kwargs)
        loss, calls = task.loss, [0]

        def poisoned(*a, **k):
            out = loss(*a, **k)
            calls[0] += 1
            if calls[0] > 1:
                return dataclasses.replace(out, loss=out.loss * float("nan"))
            return out

        task.loss = poisoned
        return task

    monkeypatch.setattr(training_loop, "build_task", nan_after_one_step)
    out = tmp_path / "p.safetensors"
    rc = main(["--mode", "awgn", "--data", str(image_dir), "--crop", "16", "--batch", "2",
               "--steps", "4", "--checkpoint-every", "1", "--val-images", "0",
               "--net", json.dumps(TINY), "--out", str(out), "--device", "cpu", "--quiet",
               "--no-register"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == EXIT_DIVERGED == 3
    result = _strict_json(captured.out.strip().splitlines()[-1])
    assert result["status"] == "diverged" and result["steps"] == 1
    assert "loss became nan at step 2" in captured.err
    assert read_metadata(out)["steps"] == 1  # the step-1 checkpoint, untouched


def test_abandoned_losses_are_null_in_the_json(image_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.safetensors"
    rc = main(["--mode", "multitask", "--arch", "dncnn", "--backward", "jfb", "--data",
               str(image_dir), "--crop", "16", "--batch", "1", "--steps", "1", "--val-images",
               "0", "--net", json.dumps(TINY), "--multitask-draws", "1", "--multitask-max-iter",
               "3", "--multitask-sr-scales", "1", "--multitask-abandon-at", "1e-6", "--out",
               str(out), "--device", "cpu", "--quiet", "--no-register"])  # fmt: skip
    assert rc == 0
    result = _strict_json(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["loss"] is None


def test_every_abandoned_step_in_a_row_is_divergence(image_dir: Path, tmp_path: Path) -> None:
    from deq_explorer.training import MultiTaskConfig

    mt = MultiTaskConfig(draws=1, max_iter=3, sr_scales=(1,), noise_levels=(0.01,), abandon_at=1e-6)
    c = config(image_dir, tmp_path / "p.safetensors", mode="multitask", arch="dncnn",
               backward="jfb", val_images=0, steps=20, multitask=mt)  # fmt: skip
    done = list(train(c))[-1]
    assert done.status == "diverged" and done.step == training_loop.ABANDONED_LIMIT
    assert "abandoned" in done.message


_TRAIN = [sys.executable, "-m", "deq_explorer.training.cli", "--mode", "awgn", "--crop", "16",
          "--batch", "2", "--val-images", "1", "--val-crop", "16", "--val-every", "3",
          "--checkpoint-every", "1", "--net", json.dumps(TINY), "--device", "cpu", "--quiet",
          "--no-register"]  # fmt: skip


def _step(out: Path) -> int:
    """The step of the checkpoint at ``out`` (0 when there is none yet)."""
    try:
        return int(read_metadata(out)["train_state"]["step"]) if out.exists() else 0
    except (CheckpointError, KeyError):
        return 0


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_a_run_that_resumes(image_dir: Path, tmp_path: Path) -> None:
    """20 SIGKILLs of a run that checkpoints every step; it resumes after each.

    Every other kill comes at a random moment after the start (start-up included); the others
    a random moment after the run has written a new checkpoint, i.e. while it trains and
    saves. Waiting for that progress, not for a fixed time, keeps the test independent of how
    fast the machine is.
    """
    out = tmp_path / "p.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(0)
    last_step = 0
    for kill in range(20):
        resume = ["--resume", str(out)] if out.exists() else []
        cmd = [*_TRAIN, "--data", str(image_dir), "--steps", "100000", "--out", str(out), *resume]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kill % 2:
            before, deadline = _step(out), time.monotonic() + 300
            while _step(out) <= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            raise AssertionError(f"training ended before its kill: {proc.communicate()[1][-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if out.exists():  # a kill before the first checkpoint leaves nothing to resume, yet
            _, meta = load_checkpoint(out)  # whole and verified, whatever the moment
            step = meta["train_state"]["step"]
            assert step == meta["steps"] >= last_step
            last_step = step
    assert last_step >= 10, "the runs made less progress than one checkpoint per waited kill"
    # finish: two more steps from the last checkpoint; the leftovers of the kills are gone
    cmd = [*_TRAIN, "--data", str(image_dir), "--steps", str(last_step + 2), "--out", str(out),
           "--resume", str(out)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == last_step + 2
    assert temporaries(out) == [] and temporaries(best_path(out)) == []
    assert all(torch.isfinite(t).all() for t in load_state(out).values())
