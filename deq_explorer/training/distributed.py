"""Data-parallel training under ``torchrun``: process group, gradient averaging, agreement.

Gradients are averaged with one ``all_reduce`` per parameter after the
backward pass instead of wrapping the network in ``DistributedDataParallel``:
a DEQ step calls the network many times (under ``no_grad`` for the fixed
point, then once per degradation with grad), and the implicit rule runs VJPs
*inside* the backward pass; DDP's reducer assumes one graph-building forward
per backward and would either fail or need ``find_unused_parameters``
bookkeeping. The arithmetic (mean of the per-process gradients, identical
initial weights broadcast from rank 0) is the same as DDP's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from deq_explorer import checks

__all__ = ["Dist", "average_gradients", "broadcast_module", "init_distributed", "resolve_device"]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (``world_size == 1``: no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints and reports."""
        return self.rank == 0


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """:func:`deq_explorer.checks.resolve_device`, with CUDA meaning ``cuda:local_rank``.

    Raises
    ------
    DeviceError
        An unknown device, or CUDA asked for where there is none.
    """
    device = checks.resolve_device(spec)
    return torch.device("cuda", local_rank) if device == torch.device("cuda") else device


def init_distributed(device: torch.device) -> Dist:
    """Join the ``torchrun`` job of ``WORLD_SIZE``/``RANK`` (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, local_rank=local)


def broadcast_module(module: nn.Module, d: Dist) -> None:
    """Give every process rank 0's parameters and buffers."""
    if d.enabled:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(params: list[torch.nn.Parameter], d: Dist) -> None:
    """Replace each gradient by its mean over processes (missing gradients count as 0)."""
    if not d.enabled:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= d.world_size


def agree(flag: bool, d: Dist) -> bool:
    """True on every process if ``flag`` is true on any."""
    if not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
