"""The training loop as a generator of events.

``train(config, stop)`` yields a :class:`StepEvent` per optimizer step,
:class:`ValEvent` every ``val_every`` steps, :class:`CheckpointEvent` when a
checkpoint is written, and ends with :class:`DoneEvent` (finished or
stopped) or :class:`FailedEvent`.

Checkpoints are the network in the package's safetensors format
(:func:`~deq_explorer.priors.checkpoint.save_checkpoint`, atomic) plus a
sidecar ``<stem>.state.pt`` holding the step, the Adam state and any
trainable tensor outside the network (MCNet's β), read back with
``torch.load(weights_only=True)``. All randomness of step ``k`` comes from
generators seeded by ``(seed, k, rank)``, so a resumed run continues the
loss trajectory of an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deq_explorer.atomic import atomic_write
from deq_explorer.priors.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from deq_explorer.priors.nets import build_net
from deq_explorer.registry import priors as prior_registry
from deq_explorer.training.config import ConfigError, TrainConfig
from deq_explorer.training.data import ImageData, generator
from deq_explorer.training.distributed import (
    Dist,
    agree,
    average_gradients,
    broadcast_module,
    init_distributed,
    resolve_device,
)
from deq_explorer.training.events import (
    CheckpointEvent,
    DoneEvent,
    FailedEvent,
    StepEvent,
    TrainEvent,
    ValEvent,
)
from deq_explorer.training.tasks import Task, build_task

__all__ = ["default_arch", "init_module", "lr_at", "state_path", "train"]

#: network used when no base prior is given
DEFAULT_ARCH = {"awgn": "dncnn", "deq": "dncnn", "mismatched": "dncnn", "multitask": "unet",
                "mcnet": "sn-dncnn", "backbone": "srcnn"}  # fmt: skip


def default_arch(config: TrainConfig) -> str:
    """``config.arch`` or the mode's default architecture."""
    return config.arch or DEFAULT_ARCH[config.mode]


def state_path(checkpoint: str | Path) -> Path:
    """The training-state sidecar of a checkpoint: ``x.safetensors`` → ``x.state.pt``."""
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + ".state.pt")


def lr_at(config: TrainConfig, step: int) -> float:
    """Step schedule: ``lr · gamma^(number of milestones ≤ step)`` (``step`` 0-based)."""
    return config.lr * config.gamma ** sum(step >= m for m in config.milestones)


def _checkpoint_file(spec: str) -> Path:
    """A base prior given as a path or as the name of a registered checkpoint prior."""
    path = Path(spec)
    if path.is_file():
        return path
    if spec in prior_registry:
        held = prior_registry.entry(spec).metadata.get("path")
        if held:
            return Path(held)
        raise ConfigError(
            f"prior {spec!r} is not a trained network (no checkpoint behind it); "
            "give a checkpoint file or a learned prior's name"
        )
    raise ConfigError(f"base prior {spec!r} is neither a checkpoint file nor a registered prior")


def init_module(config: TrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    """The network a run starts from (resume > base prior > a fresh seeded net) and its metadata."""
    if config.resume:
        module, meta = load_checkpoint(config.resume)
    elif config.prior:
        module, meta = load_checkpoint(_checkpoint_file(config.prior))
    else:
        torch.manual_seed(config.seed)
        try:
            module = build_net(default_arch(config), {"channels": config.channels, **config.net})
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        meta = {}
    channels = getattr(module, "channels", config.channels)
    if channels != config.channels:
        raise ConfigError(
            f"the base network works on {channels} channel(s) but channels={config.channels}"
        )
    role = getattr(type(module), "role", "denoiser")
    if config.mode == "backbone" and role != "backbone":
        raise ConfigError(
            f"mode 'backbone' trains a reconstruction network (e.g. arch 'srcnn'); "
            f"{type(module).__name__} is a {role}"
        )
    if config.mode != "backbone" and role != "denoiser":
        raise ConfigError(
            f"{type(module).__name__} is not a denoiser and cannot be trained as a prior"
        )
    return module.float(), meta


def _backbone(config: TrainConfig) -> nn.Module | None:
    if config.mode != "mcnet" or not config.mcnet.backbone:
        return None
    module, _ = load_checkpoint(_checkpoint_file(config.mcnet.backbone))
    return module.float()


def _save_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_write(path) as f:
        torch.save(state, f)


def _load_state(checkpoint: str, meta: dict[str, Any]) -> dict[str, Any]:
    path = state_path(checkpoint)
    if not path.is_file():
        raise CheckpointError(
            f"cannot resume from {checkpoint!r}: its training state {str(path)!r} is missing "
            "(only checkpoints written by `train` can be resumed; use it as --prior instead)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"training state {str(path)!r} is unreadable or unsafe: {exc}"
        ) from None
    if state.get("step") != meta.get("steps"):
        raise CheckpointError(
            f"training state {str(path)!r} is at step {state.get('step')} but the checkpoint at "
            f"step {meta.get('steps')}: the pair is inconsistent (interrupted write?)"
        )
    return state


class _Run:
    """The mutable parts of one run (kept out of the event stream)."""

    def __init__(self, config: TrainConfig, d: Dist, device: torch.device) -> None:
        self.config, self.dist, self.device = config, d, device
        self.data = ImageData.load(
            config.data, channels=config.channels, crop=config.crop,
            val_images=config.val_images, val_crop=config.val_crop, seed=config.seed,
            rank=d.rank, world_size=d.world_size,
        )  # fmt: skip
        module, base_meta = init_module(config)
        if config.prior_sigma < 0 and "sigma" in base_meta and config.mode != "awgn":
            import dataclasses

            config = dataclasses.replace(config, prior_sigma=float(base_meta["sigma"]))
            self.config = config
        self.task: Task = build_task(config, module, device, _backbone(config))
        self.params = self.task.parameters()
        self.opt = torch.optim.Adam(self.params, lr=config.lr)
        self.step = 0
        if config.resume:
            state = _load_state(config.resume, base_meta)
            self.opt.load_state_dict(state["optimizer"])
            self.task.load_extra_state(state.get("extra", {}))
            self.step = int(state["step"])
        broadcast_module(self.task.module, d)
        spe = self.data.steps_per_epoch(config.batch)
        self.total = config.epochs * spe if config.epochs else config.steps
        self.metrics: dict[str, Any] = {}

    def save(self) -> CheckpointEvent:
        c = self.config
        out = Path(c.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "optimizer": self.opt.state_dict(),
            "extra": self.task.extra_state(),
        }
        _save_state(state_path(out), state)
        meta = {
            "name": c.name or out.stem,
            "mode": c.mode,
            "recipe": c.to_dict(),
            "data": {
                "source": c.data,
                "train_images": self.data.total,
                "val_images": list(self.data.val_names),
                "crop": c.crop,
            },
            "steps": self.step,
            "processes": self.dist.world_size,
            "metrics": self.metrics,
            **self.task.metadata(),
        }
        save_checkpoint(out, self.task.module, meta)
        return CheckpointEvent(str(out), self.step)

    def validate(self) -> ValEvent:
        x = self.data.val.to(self.device)
        psnr, ssim = self.task.validate(x)
        self.metrics.update(val_psnr=psnr, val_ssim=ssim, val_step=self.step)
        return ValEvent(self.step, psnr, ssim)


def train(config: TrainConfig, stop: Callable[[], bool] | None = None) -> Iterator[TrainEvent]:
    """Run ``config`` and yield its events; ``stop()`` is honoured within one step.

    Parameters
    ----------
    config : TrainConfig
        The recipe.
    stop : callable, optional
        Polled before every step and inside the step's fixed-point solves;
        when it returns True the current step is abandoned (not applied), the
        checkpoint is written and :class:`DoneEvent` ``("stopped")`` ends the run.
    """
    d = Dist()
    try:
        device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
        d = init_distributed(device)
        yield from _train(config, stop, d, device)
    except (ValueError, OSError, RuntimeError, FloatingPointError) as exc:
        if os.environ.get("DEQ_EXPLORER_DEBUG"):
            raise
        yield FailedEvent(
            str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        )
    finally:
        if d.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(
    config: TrainConfig, stop: Callable[[], bool] | None, d: Dist, device: torch.device
) -> Iterator[TrainEvent]:
    run = _Run(config, d, device)
    config, task = run.config, run.task
    local_stop = stop if not d.enabled else None  # a mid-solve abort must be agreed by all ranks
    status, saved = "finished", -1
    while run.step < run.total:
        if agree(bool(stop and stop()), d):
            status = "stopped"
            break
        lr = lr_at(config, run.step)
        for group in run.opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        x = run.data.batch(run.step, batch=config.batch, crop=config.crop, seed=config.seed,
                           rank=d.rank).to(device)  # fmt: skip
        g = generator(config.seed, run.step, d.rank, 3)
        run.opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            out = task.loss(x, g, stop=local_stop)
            if out.loss is not None:
                out.loss.backward()
        if local_stop is not None and local_stop():
            status = "stopped"  # the step was cut short: do not apply it
            break
        loss = float(out.loss.detach()) if out.loss is not None else math.nan
        if out.loss is not None and not math.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss} at step {run.step + 1}; lower the learning rate "
                f"(lr={config.lr}) or the solver step sizes"
            )
        average_gradients(run.params, d)
        if agree(out.loss is not None, d):
            run.opt.step()
            task.after_step()
        run.step += 1
        run.metrics["loss"] = loss
        if d.main:
            yield StepEvent(run.step, loss, lr, out.fwd_iters, out.bwd_iters,
                            time.perf_counter() - t0)  # fmt: skip
        if (
            d.main
            and len(run.data.val)
            and (run.step % config.val_every == 0 or run.step == run.total)
        ):
            yield run.validate()
        if d.main and config.checkpoint_every and run.step % config.checkpoint_every == 0:
            yield run.save()
            saved = run.step
    if d.main:
        if saved != run.step or status == "stopped":
            yield run.save()
        yield DoneEvent(status, str(Path(config.out)), run.step, dict(run.metrics))
    if d.enabled:
        torch.distributed.barrier()
