"""The training loop: every mode learns, stop, resume, events, checkpoints."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from deq_explorer.priors.checkpoint import load_checkpoint, load_state, save_checkpoint
from deq_explorer.training import (
    CheckpointEvent,
    DoneEvent,
    FailedEvent,
    MultiTaskConfig,
    StepEvent,
    TrainConfig,
    ValEvent,
    train,
)
from deq_explorer.training.data import ImageData, generator
from deq_explorer.training.loop import init_module
from deq_explorer.training.tasks import build_task

TINY = {"depth": 3, "width": 8}
MODES = {
    "awgn": dict(mode="awgn", noise=(0.05, 0.1)),
    "deq": dict(mode="deq", operators=("deblur:sigma=1.0",), noise=(0.01,)),
    "deq-jfb": dict(mode="deq", operators=("inpaint:p=0.3",), backward="jfb", solver="red-sd"),
    "mismatched": dict(
        mode="mismatched", operators=("deblur:sigma=1.0",), eval_operator="deblur:sigma=1.4"
    ),
    "multitask": dict(
        mode="multitask",
        backward="jfb",
        arch="dncnn",
        accel="none",
        multitask=MultiTaskConfig(
            draws=2, max_iter=15, sr_scales=(1, 2), noise_levels=(0.01, 0.02)
        ),
    ),
    "mcnet": dict(mode="mcnet", operators=("sr-bicubic:scale=2",), noise=(0.0,)),
    "backbone": dict(
        mode="backbone", operators=("sr-bicubic:scale=2",), noise=(0.0,), net={"width": 8}
    ),
}


def tiny(image_dir: Path, tmp_path: Path, **kw: object) -> TrainConfig:
    base = dict(
        data=str(image_dir), crop=24, batch=2, steps=6, val_images=1, val_crop=24, val_every=3,
        net=TINY, out=str(tmp_path / "p.safetensors"), lr=2e-3, max_iter=15, backward_max_iter=15,
        device="cpu",
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def fixed_batch_loss(config: TrainConfig, module: torch.nn.Module, extra: dict) -> float:
    data = ImageData.load(
        config.data, channels=1, crop=config.crop, val_images=1, val_crop=24, seed=0
    )
    task = build_task(config, module, torch.device("cpu"))
    task.load_extra_state(extra)
    x = data.batch(0, batch=config.batch, crop=config.crop, seed=config.seed)
    with torch.no_grad():
        return float(task.loss(x, generator(config.seed, 12345)).loss)


@pytest.mark.parametrize("name", list(MODES))
def test_mode_lowers_the_loss_on_a_fixed_batch(image_dir: Path, tmp_path: Path, name: str) -> None:
    config = tiny(image_dir, tmp_path, **MODES[name])
    before_module, _ = init_module(config)
    extra = {"log_beta": torch.tensor(0.0)} if config.mode == "mcnet" else {}
    before = fixed_batch_loss(config, before_module, extra)
    events = list(train(config))
    assert not [e for e in events if isinstance(e, FailedEvent)], events[-1]
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == list(range(1, 7))
    assert all(math.isfinite(e.loss) and e.lr == 2e-3 and e.seconds >= 0 for e in steps)
    if config.mode not in ("awgn", "backbone"):
        assert all(e.fwd_iters > 0 for e in steps)
    if config.mode in ("deq", "mismatched", "mcnet") and config.backward == "implicit":
        assert all(e.bwd_iters > 0 for e in steps)
    else:
        assert all(e.bwd_iters == 0 for e in steps)
    vals = [e for e in events if isinstance(e, ValEvent)]
    assert [v.step for v in vals] == [3, 6] and all(math.isfinite(v.psnr) for v in vals)
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "finished" and done.step == 6
    module, meta = load_checkpoint(done.path)
    assert meta["mode"] == config.mode and meta["steps"] == 6 and meta["recipe"]["crop"] == 24
    assert meta["metrics"]["val_psnr"] == vals[-1].psnr
    assert meta["metrics"]["val_curve"] == [[v.step, v.psnr, v.ssim] for v in vals]
    state = load_state(done.path)  # the state to resume lives in the checkpoint itself
    extra = {k.removeprefix("extra/"): v for k, v in state.items() if k.startswith("extra/")}
    after = fixed_batch_loss(config, module, extra)
    assert after < before, (before, after)


def test_stop_within_one_step(image_dir: Path, tmp_path: Path) -> None:
    config = tiny(image_dir, tmp_path, **MODES["deq"])
    seen: list[object] = []
    events = []
    for ev in train(config, stop=lambda: any(isinstance(e, StepEvent) for e in seen)):
        seen.append(ev)
        events.append(ev)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["StepEvent", "CheckpointEvent", "DoneEvent"]
    assert events[-1].status == "stopped" and events[-1].step == 1
    assert load_checkpoint(events[-1].path)[1]["steps"] == 1


def test_stop_inside_a_solve_discards_the_step(image_dir: Path, tmp_path: Path) -> None:
    config = tiny(image_dir, tmp_path, **MODES["deq"])
    calls = [0]

    def stop() -> bool:  # checked before the step and then before each forward iteration
        calls[0] += 1
        return calls[0] > 5

    events = list(train(config, stop=stop))
    assert [type(e).__name__ for e in events] == ["CheckpointEvent", "DoneEvent"]
    assert events[-1].status == "stopped" and events[-1].step == 0


def test_resume_continues_the_same_trajectory(image_dir: Path, tmp_path: Path) -> None:
    kw = dict(MODES["deq"], steps=4, milestones=(3,), gamma=0.5)
    full = tiny(image_dir, tmp_path / "a", **kw)
    losses = [e.loss for e in train(full) if isinstance(e, StepEvent)]
    part = tiny(image_dir, tmp_path / "b", **kw)
    seen: list[int] = []
    for ev in train(part, stop=lambda: len(seen) >= 2):
        if isinstance(ev, StepEvent):
            seen.append(ev.step)
    resumed = dataclasses.replace(part, resume=part.out, out=str(tmp_path / "c.safetensors"))
    events = list(train(resumed))
    rest = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in rest] == [3, 4]
    assert [e.lr for e in rest] == [2e-3, 1e-3]  # milestone 3: ×0.5 from the 4th step
    torch.testing.assert_close([e.loss for e in rest], losses[2:], rtol=1e-6, atol=0)
    # and the final weights agree, and so do the validation curves (continued, not restarted)
    a, meta_a = load_checkpoint(full.out)
    c, meta_c = load_checkpoint(resumed.out)
    curve_a, curve_c = meta_a["metrics"]["val_curve"], meta_c["metrics"]["val_curve"]
    assert [s for s, *_ in curve_c] == [s for s, *_ in curve_a] == [3, 4]
    for p, q in zip(a.state_dict().values(), c.state_dict().values(), strict=False):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_resume_without_state_is_refused(image_dir: Path, tmp_path: Path) -> None:
    config = tiny(image_dir, tmp_path, **MODES["awgn"], steps=1)
    list(train(config))
    module, _ = load_checkpoint(config.out)
    bare = save_checkpoint(tmp_path / "bare.safetensors", module, {"mode": "awgn", "steps": 1})
    events = list(train(dataclasses.replace(config, resume=str(bare))))
    assert isinstance(events[-1], FailedEvent) and "no training state" in events[-1].message
    assert "--prior" in events[-1].message


def test_multitask_abandons_diverging_draws(image_dir: Path, tmp_path: Path) -> None:
    mt = MultiTaskConfig(draws=2, max_iter=5, sr_scales=(1,), noise_levels=(0.01,), abandon_at=1e-3)
    config = tiny(image_dir, tmp_path, mode="multitask", arch="dncnn", backward="jfb", steps=1,
                  val_images=0, multitask=mt)  # fmt: skip
    before, _ = init_module(config)
    events = list(train(config))
    step = next(e for e in events if isinstance(e, StepEvent))
    assert math.isnan(step.loss)  # every draw exceeded 1e-3: nothing to learn from
    after, _ = load_checkpoint(events[-1].path)
    for p, q in zip(before.state_dict().values(), after.state_dict().values(), strict=False):
        assert torch.equal(p, q)


def test_checkpoint_every_and_failures(image_dir: Path, tmp_path: Path) -> None:
    config = tiny(image_dir, tmp_path, **MODES["awgn"], steps=4, checkpoint_every=2)
    written = [(Path(e.path).name, e.step) for e in train(config) if isinstance(e, CheckpointEvent)]
    assert [step for name, step in written if name == "p.safetensors"] == [2, 4]
    assert {name for name, _ in written} == {"p.safetensors", "p.best.safetensors"}
    bad = tiny(image_dir, tmp_path, **MODES["awgn"], data=str(tmp_path / "nowhere"))
    (ev,) = list(train(bad))
    assert isinstance(ev, FailedEvent) and "nowhere" in ev.message
    bad = tiny(image_dir, tmp_path, **MODES["awgn"], prior="no-such-prior")
    (ev,) = list(train(bad))
    assert isinstance(ev, FailedEvent) and "no-such-prior" in ev.message


def test_deq_from_base_checkpoint(image_dir: Path, tmp_path: Path) -> None:
    base = tiny(image_dir, tmp_path / "base", **MODES["awgn"], steps=2, val_images=0)
    list(train(base))
    config = tiny(image_dir, tmp_path, **MODES["deq"], prior=base.out, steps=1, val_images=0)
    events = list(train(config))
    assert isinstance(events[-1], DoneEvent)
    _, meta = load_checkpoint(config.out)
    assert meta["sigma"] == pytest.approx(0.05)  # the AWGN base's noise level carried over


def test_backbone_mode_checks_network_and_scale(image_dir: Path, tmp_path: Path) -> None:
    x3 = {"width": 8, "scale": 3}
    wrong_scale = tiny(image_dir, tmp_path, **{**MODES["backbone"], "net": x3})
    failed = list(train(wrong_scale))[-1]
    assert isinstance(failed, FailedEvent) and "scale" in failed.message
    denoiser = tiny(image_dir, tmp_path, **{**MODES["backbone"], "arch": "dncnn", "net": TINY})
    failed = list(train(denoiser))[-1]
    assert isinstance(failed, FailedEvent) and "srcnn" in failed.message
    srcnn_as_prior = tiny(image_dir, tmp_path, mode="awgn", arch="srcnn", net={"width": 8})
    failed = list(train(srcnn_as_prior))[-1]
    assert isinstance(failed, FailedEvent) and "not a denoiser" in failed.message


def test_training_with_the_jacobian_term(image_dir: Path, tmp_path: Path) -> None:
    kw = dict(
        mode="deq", operators=("deblur:sigma=1.0",), noise=(0.01,), data=str(image_dir), crop=24,
        batch=2, steps=2, val_images=1, val_crop=24, net={"depth": 3, "width": 8}, max_iter=10,
        backward_max_iter=10, device="cpu",
    )  # fmt: skip
    losses = {}
    for weight in (0.0, 5.0):
        config = TrainConfig(
            **kw, jacobian_weight=weight, out=str(tmp_path / f"{weight}.safetensors")
        )
        events = list(train(config))
        assert isinstance(events[-1], DoneEvent) and events[-1].status == "finished"
        losses[weight] = next(e.loss for e in events if isinstance(e, StepEvent))
    assert losses[5.0] > losses[0.0]  # the same first batch, plus a positive penalty
    with pytest.raises(ValueError, match="jacobian_weight"):
        TrainConfig(jacobian_weight=-1.0)
