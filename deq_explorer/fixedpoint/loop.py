"""Monitoring on top of the fixed-point core: :func:`iterate` streams images and metrics,
:func:`solve` drains it into a :class:`Solution`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor

from deq_explorer.checks import integer
from deq_explorer.errors import SolverError
from deq_explorer.fixedpoint.base import (
    Accelerator,
    FixedPointMap,
    Iterate,
    Solution,
    Status,
    StopRule,
)
from deq_explorer.fixedpoint.core import Step, check_rule, steps
from deq_explorer.metrics import SSIM_MIN_SIZE, batch_consistency, batch_psnr, batch_ssim

__all__ = ["collect", "contraction_rate", "iterate", "solve"]


class _Meter:
    """Consistency, PSNR and SSIM of an image (batch means), as 0-d tensors.

    Holds what does not change between iterations: the operator, ``y``, its
    norm and the reference.
    """

    def __init__(self, fp_map: FixedPointMap, reference: Tensor | None, shape: torch.Size) -> None:
        self.op, self.y, self.reference = fp_map.op, fp_map.y, reference
        self.y_norm = fp_map.op.norm(fp_map.y)
        self.with_ssim = reference is not None and min(shape[-2:]) >= SSIM_MIN_SIZE

    def __call__(self, x: Tensor) -> list[Tensor]:
        values = [batch_consistency(self.op, x, self.y, self.y_norm).mean()]
        if self.reference is not None:
            values.append(batch_psnr(x, self.reference).mean())
            if self.with_ssim:
                values.append(batch_ssim(x, self.reference).mean())
        return values


def _floats(values: list[Tensor], length: int) -> list[float | None]:
    """The scalars as floats in one host sync, padded with ``None`` to ``length``."""
    out: list[float | None] = torch.stack([v.double() for v in values]).tolist() if values else []
    return out + [None] * (length - len(out))


def _without_grad(it: Iterator[Step]) -> Iterator[Step]:
    """``it`` with each step computed under ``torch.no_grad()`` (the caller's mode between)."""
    while True:
        with torch.no_grad():
            step = next(it, None)
        if step is None:
            return
        yield step


def iterate(
    fp_map: FixedPointMap,
    accelerator: Accelerator | None = None,
    rule: StopRule = StopRule(),  # noqa: B008 - frozen, shared safely
    reference: Tensor | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    metrics_every: int = 1,
) -> Iterator[Iterate]:
    """Run :func:`~deq_explorer.fixedpoint.core.steps` on ``fp_map`` and yield an :class:`Iterate`
    after every iteration.

    Each iterate reports the image ``x`` ``(B, C, H, W)`` after iteration ``k``
    (1-based), the per-pixel change ``|x_k − x_{k−1}|``, the core's residual
    (the largest relative ``‖T(z) − z‖/‖z‖`` of the batch), the data consistency
    ``‖Ax − y‖/‖y‖`` (batch mean), PSNR/SSIM against ``reference`` when given
    (SSIM needs at least 11×11 pixels) and the seconds since the start. The last
    iterate carries the core's final status; after DIVERGED its ``x`` is the last
    finite image.

    Consistency, PSNR and SSIM cost an application of ``A`` and two image
    comparisons; with ``metrics_every = n > 1`` they are computed only when
    ``k`` is a multiple of ``n`` and on the last iterate, and are ``None`` on
    the others.

    The maps run under ``torch.no_grad()``, switched on only around the
    computation so that the caller's grad mode between yields is untouched.
    Tensors are yielded as computed, not copied.
    """
    check_rule(rule)
    integer(metrics_every, "metrics_every", error=SolverError)
    start = time.perf_counter()
    with torch.no_grad():
        x = fp_map.image(fp_map.z0)
        if reference is not None and tuple(reference.shape) != tuple(x.shape):
            raise SolverError(
                f"reference has shape {tuple(reference.shape)}; the image is {tuple(x.shape)}"
            )
        meter = _Meter(fp_map, reference, x.shape)
    for step in _without_grad(steps(fp_map.T, fp_map.z0, accelerator, rule, stop=stop)):
        with torch.no_grad():
            x_next = x if step.status is Status.DIVERGED else fp_map.image(step.z_next)
            measured = step.k % metrics_every == 0 or step.status is not Status.RUNNING
            consistency, psnr, ssim = _floats(meter(x_next) if measured else [], 3)
            change = torch.sub(x_next, x).abs_()
        seconds = time.perf_counter() - start
        yield Iterate(
            step.k, x_next, change, step.residual, consistency, psnr, ssim, seconds, step.status
        )
        x = x_next


def solve(
    fp_map: FixedPointMap,
    accelerator: Accelerator | None = None,
    rule: StopRule = StopRule(),  # noqa: B008 - frozen, shared safely
    reference: Tensor | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    metrics_every: int = 1,
    on_iterate: Callable[[Iterate], None] | None = None,
) -> Solution:
    """Drain :func:`iterate` into a :class:`Solution`, showing each iterate to ``on_iterate``.

    ``history`` holds one list per metric, one entry per iteration:
    ``residual``, ``consistency``, ``psnr``, ``ssim`` (``None`` without a
    reference, and for all three on iterations skipped by ``metrics_every``)
    and ``seconds``.
    """
    its = iterate(fp_map, accelerator, rule, reference, stop, metrics_every=metrics_every)
    return collect(its, on_iterate)


def collect(
    iterates: Iterable[Iterate], on_iterate: Callable[[Iterate], None] | None = None
) -> Solution:
    """Drain any stream of :class:`Iterate` (one solve, or the stages of one) into a
    :class:`Solution`, showing each iterate to ``on_iterate``."""
    keys = ("residual", "consistency", "psnr", "ssim", "seconds")
    history: dict[str, list[float | None]] = {key: [] for key in keys}
    last = None
    for last in iterates:
        for key in keys:
            history[key].append(getattr(last, key))
        if on_iterate is not None:
            on_iterate(last)
    if last is None:
        raise SolverError("no iterate to collect: the stream was empty")
    return Solution(
        x=last.x, status=last.status, iterations=last.k, seconds=last.seconds, history=history,
        rate=contraction_rate(history["residual"]),
    )  # fmt: skip


def contraction_rate(residuals: list[float | None], window: int = 10) -> float | None:
    """Geometric mean of ``r_k / r_{k−1}`` over the last ``window`` ratios (None if < 2 values).

    For plain iteration near a fixed point this tends to the map's contraction factor there
    (its Jacobian's spectral radius); ≥ 1 means the residual is not falling.
    """
    r = [v for v in residuals[-(window + 1) :] if v is not None]
    if len(r) < 2 or not all(math.isfinite(v) for v in r):
        return None
    if r[0] == 0 or r[-1] == 0:
        return 0.0
    return (r[-1] / r[0]) ** (1 / (len(r) - 1))
