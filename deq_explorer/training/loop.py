"""The training loop as a generator of events.

``train(config, stop)`` yields a :class:`StepEvent` per optimizer step,
:class:`ValEvent` every ``val_every`` steps, :class:`CheckpointEvent` when a
checkpoint is written, and ends with :class:`DoneEvent` (finished or
stopped) or :class:`FailedEvent`.

Checkpoints are the network in the package's safetensors format
(:func:`~deq_explorer.priors.checkpoint.save_checkpoint`, atomic) with the
state to resume it in the *same* file: the Adam tensors and any trainable
tensor outside the network (MCNet's β) as ``state/…`` tensors, the step and
the optimizer's hyper-parameters in the metadata record. Weights and state
commit together in one ``os.replace``, so a run killed at any moment leaves
a checkpoint that resumes; the next run removes the temporaries a kill left.

Two files per run: ``out`` (the last healthy state, what ``--resume`` takes)
and ``<stem>.best.safetensors`` (weights at the best validation PSNR). A run
that diverges — a non-finite loss or validation, weights that are not finite
or grew by more than :data:`GROWTH_LIMIT` over the start, or
:data:`ABANDONED_LIMIT` steps in a row whose every draw was abandoned — ends
with :class:`DoneEvent` ``("diverged")`` and never overwrites either file.

All randomness of step ``k`` comes from generators seeded by ``(seed, k, rank)``,
so a resumed run continues the loss trajectory of an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from deq_explorer.atomic import remove_stale
from deq_explorer.priors.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state,
    save_checkpoint,
)
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
from deq_explorer.training.modes import mode
from deq_explorer.training.tasks import Task, build_task

__all__ = ["ABANDONED_LIMIT", "GROWTH_LIMIT", "best_path", "check_writable", "default_arch",
           "init_module", "lr_at", "train"]  # fmt: skip

#: weights whose largest magnitude grew by more than this factor over the start have diverged
GROWTH_LIMIT = 1e3
#: this many steps in a row whose every draw was abandoned mean the map has diverged
ABANDONED_LIMIT = 5


def default_arch(config: TrainConfig) -> str:
    """``config.arch`` or the mode's default architecture (its task's ``arch``)."""
    return config.arch or mode(config.mode).arch


def best_path(checkpoint: str | Path) -> Path:
    """Where a run keeps its best weights: ``x.safetensors`` → ``x.best.safetensors``."""
    p = Path(checkpoint)
    return p.with_name(p.name.removesuffix(".safetensors") + ".best.safetensors")


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
    role, task = getattr(type(module), "role", "denoiser"), mode(config.mode)
    if role != task.role:
        raise ConfigError(
            f"mode {config.mode!r} trains a {task.role} (e.g. arch {task.arch!r}); "
            f"{type(module).__name__} is a {role}, not a {task.role}"
        )
    return module.float(), meta


def _pack_state(opt: torch.optim.Optimizer, extra: dict[str, Tensor]) -> tuple[dict, dict]:
    """The optimizer and ``extra`` as ``(tensors, JSON record)`` for :func:`save_checkpoint`."""
    sd = opt.state_dict()
    tensors = {f"extra/{k}": v for k, v in extra.items()}
    scalars = {}
    for index, slots in sd["state"].items():
        for key, value in slots.items():
            if isinstance(value, Tensor):
                tensors[f"opt/{index}/{key}"] = value
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unpack_state(tensors: dict[str, Tensor], record: dict) -> tuple[dict, dict[str, Tensor]]:
    """The inverse of :func:`_pack_state`: ``(optimizer state_dict, extra)``."""
    state: dict[int, dict[str, Any]] = {}
    extra = {}
    for name, value in tensors.items():
        kind, _, rest = name.partition("/")
        if kind == "extra":
            extra[rest] = value
        elif kind == "opt":
            index, _, key = rest.partition("/")
            state.setdefault(int(index), {})[key] = value
    for name, value in record.get("scalars", {}).items():
        index, _, key = name.partition("/")
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": record["param_groups"]}, extra


def _load_train_state(checkpoint: str, meta: dict[str, Any]) -> tuple[int, dict, dict]:
    """``(step, optimizer state_dict, extra)`` stored in a checkpoint written by ``train``."""
    record = meta.get("train_state")
    if not isinstance(record, dict) or "step" not in record:
        raise CheckpointError(
            f"cannot resume from {checkpoint!r}: it holds no training state (only checkpoints "
            "written by `train` of this version can be resumed); start a new run from it with "
            "--prior instead"
        )
    opt_state, extra = _unpack_state(load_state(checkpoint), record)
    return int(record["step"]), opt_state, extra


def check_writable(out: str | Path, what: str = "out (--out)") -> None:
    """Refuse a checkpoint path that cannot be written, by writing a probe beside it.

    Parameters
    ----------
    out : str or Path
        The checkpoint to write (``.safetensors``); its folder is made if missing.
    what : str
        How the error message names the setting (the CLI flag, a panel's field).

    Raises
    ------
    ConfigError
        A path without ``.safetensors`` or in a folder that cannot be written.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"{what} must end with .safetensors, got {str(out)!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write the checkpoint {str(out)!r} ({exc.strerror or exc}); choose another "
            f"{what} in a folder you can write to"
        ) from None


def _largest(module: nn.Module) -> float:
    """The largest weight magnitude of ``module`` (inf if any weight is not finite)."""
    values = [p.detach().abs().max() for p in module.parameters() if p.numel()]
    if not values:
        return 0.0
    top = float(torch.stack(values).max())
    finite = all(bool(torch.isfinite(p).all()) for p in module.parameters())
    return top if finite else math.inf


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
        self.task: Task = build_task(config, module, device)
        self.params = self.task.parameters()
        self.opt = torch.optim.Adam(self.params, lr=config.lr)
        self.step = 0
        self.metrics: dict[str, Any] = {}
        if config.resume:
            self.step, opt_state, extra = _load_train_state(config.resume, base_meta)
            self.opt.load_state_dict(opt_state)
            self.task.load_extra_state(extra)
            self.metrics = dict(base_meta.get("metrics", {}))
        broadcast_module(self.task.module, d)
        spe = self.data.steps_per_epoch(config.batch)
        self.total = config.epochs * spe if config.epochs else config.steps
        self.start_largest = max(_largest(self.task.module), 1e-3)
        self.best_psnr = float(self.metrics.get("best_val_psnr", -math.inf))
        if d.main:
            check_writable(config.out)  # before hours of training, not after
            for path in (Path(config.out), best_path(config.out)):
                remove_stale(path)  # what a killed writer left beside this run's files

    def diverged(self) -> str:
        """Why the network's weights count as diverged, or ``""``."""
        largest = _largest(self.task.module)
        if not math.isfinite(largest):
            return "the weights are no longer finite"
        if largest > GROWTH_LIMIT * self.start_largest:
            return (
                f"the largest weight grew from {self.start_largest:.3g} to {largest:.3g} "
                f"(over {GROWTH_LIMIT:g}×)"
            )
        return ""

    def _meta(self) -> dict[str, Any]:
        c = self.config
        out = Path(c.out)
        return {
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
            "metrics": dict(self.metrics),
            **self.task.metadata(),
        }

    def save(self) -> CheckpointEvent:
        """Write the last state (weights and what resumes them, one file)."""
        out = Path(self.config.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tensors, record = _pack_state(self.opt, self.task.extra_state())
        meta = {**self._meta(), "train_state": {"step": self.step, **record}}
        save_checkpoint(out, self.task.module, meta, state=tensors)
        return CheckpointEvent(str(out), self.step)

    def validate(self) -> tuple[ValEvent, CheckpointEvent | None]:
        """Validate; keep the weights as the best when their PSNR is the highest so far."""
        x = self.data.val.to(self.device)
        psnr, ssim = self.task.validate(x)
        curve = [*self.metrics.get("val_curve", []), [self.step, psnr, ssim]]
        self.metrics.update(val_psnr=psnr, val_ssim=ssim, val_step=self.step, val_curve=curve)
        best = None
        if math.isfinite(psnr) and psnr > self.best_psnr and not self.diverged():
            self.best_psnr = psnr
            self.metrics.update(best_val_psnr=psnr, best_step=self.step)
            path = save_checkpoint(best_path(self.config.out), self.task.module, self._meta())
            best = CheckpointEvent(str(path), self.step)
        return ValEvent(self.step, psnr, ssim), best


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
    status, saved, why, abandoned = "finished", -1, "", 0
    while run.step < run.total:
        if agree(bool(stop and stop()), d):
            status = "stopped"
            break
        lr = lr_at(config, run.step)
        for group in run.opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        x = run.data.batch(run.step, batch=config.batch, crop=config.crop, seed=config.seed,
                           rank=d.rank, gamma=config.augment_gamma).to(device)  # fmt: skip
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
        if agree(out.loss is not None and not math.isfinite(loss), d):  # every rank stops
            status, why = "diverged", f"the loss became {loss} at step {run.step + 1}"
            break
        average_gradients(run.params, d)
        if agree(out.loss is not None, d):
            run.opt.step()
            task.after_step()
        abandoned = 0 if out.loss is not None else abandoned + 1
        run.step += 1
        run.metrics["loss"] = loss if math.isfinite(loss) else None
        if d.main:
            yield StepEvent(run.step, loss, lr, out.fwd_iters, out.bwd_iters,
                            time.perf_counter() - t0)  # fmt: skip
        why = run.diverged()
        if agree(abandoned >= ABANDONED_LIMIT, d):
            why = (
                f"every draw of {abandoned} steps in a row was abandoned (its iterate passed "
                "abandon_at)"
            )
        if why:
            status = "diverged"
            break
        if (
            d.main
            and len(run.data.val)
            and (run.step % config.val_every == 0 or run.step == run.total)
        ):
            val, best = run.validate()
            yield val
            if best is not None:
                yield best
            if not math.isfinite(val.psnr):
                status, why = "diverged", f"the validation PSNR became {val.psnr}"
        if agree(status == "diverged", d):
            status = "diverged"
            break
        if d.main and config.checkpoint_every and run.step % config.checkpoint_every == 0:
            yield run.save()
            saved = run.step
    if d.main:
        if status != "diverged" and (saved != run.step or status == "stopped"):
            yield run.save()
        path = Path(config.out)
        if status == "diverged":
            kept = f"the checkpoint {str(path)!r} was kept as it was" if path.is_file() else (
                "no checkpoint was written")  # fmt: skip
            why = (
                f"training diverged at step {run.step}: {why}; {kept}. Lower the learning rate "
                f"(lr={config.lr}) or the solver's step sizes, then --resume"
            )
        yield DoneEvent(status, str(path) if path.is_file() else "", run.step,
                        dict(run.metrics), why)  # fmt: skip
    if d.enabled:
        torch.distributed.barrier()
