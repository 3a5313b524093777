"""The one iteration loop: :func:`iterate` streams iterates, :func:`solve` drains it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from deq_explorer.fixedpoint.accelerators import NoAcceleration
from deq_explorer.fixedpoint.base import (
    Accelerator,
    FixedPointMap,
    Iterate,
    Solution,
    Status,
    StopRule,
)
from deq_explorer.metrics import SSIM_MIN_SIZE, batch_consistency, batch_psnr, batch_ssim

__all__ = ["iterate", "solve"]


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
    out: list[float | None] = torch.stack([v.double() for v in values]).tolist()
    return out + [None] * (length - len(out))


def _relative_residual(z: Tensor, Tz: Tensor) -> Tensor:
    """``max_b ‖T(z)_b − z_b‖ / ‖z_b‖`` as a 0-d float64 tensor.

    An item with ``z_b = 0`` is measured against ``‖T(z)_b‖`` instead (1 unless
    ``T(z)_b = 0`` too, then 0).
    """
    num = torch.linalg.vector_norm((Tz - z).flatten(1), dim=1, dtype=torch.float64)
    den = torch.linalg.vector_norm(z.flatten(1), dim=1, dtype=torch.float64)
    den = torch.where(
        den > 0, den, torch.linalg.vector_norm(Tz.flatten(1), dim=1, dtype=torch.float64)
    )
    return torch.where(num == 0, 0.0, num / den).amax()


def iterate(
    fp_map: FixedPointMap,
    accelerator: Accelerator | None = None,
    rule: StopRule = StopRule(),  # noqa: B008 - frozen, shared safely
    reference: Tensor | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    metrics_every: int = 1,
) -> Iterator[Iterate]:
    """Run ``z ← T(z)`` and yield an :class:`Iterate` after every iteration.

    Iteration ``k`` (1-based) evaluates ``T(z)``, lets the accelerator choose
    the next state and reports: its image ``x`` ``(B, C, H, W)``, the per-pixel
    change ``|x_k − x_{k−1}|``, the relative residual ``‖T(z) − z‖/‖z‖`` of
    the state it started from (largest over the batch; a zero state is
    measured against ``‖T(z)‖``), the data consistency
    ``‖Ax − y‖/‖y‖`` (batch mean), PSNR/SSIM against ``reference`` when given
    (SSIM needs at least 11×11 pixels) and the seconds since the start.

    The loop ends, and the last iterate carries the reason, when the state is
    non-finite or exceeds ``rule.diverge_at`` in magnitude (DIVERGED; ``x`` is
    then the last finite image), the residual is below ``rule.tol``
    (CONVERGED), ``k == rule.max_iter`` (MAX_ITER), or ``stop()`` returns
    True after an iteration (STOPPED). All other iterates are RUNNING.

    Consistency, PSNR and SSIM cost an application of ``A`` and two image
    comparisons; with ``metrics_every = n > 1`` they are computed only when
    ``k`` is a multiple of ``n`` and on the last iterate, and are ``None`` on
    the others. The residual (needed by the stop rule) is computed every
    iteration. Each iteration synchronises with the device once (twice on a
    last iterate that ends off the ``metrics_every`` grid).

    The maps run under ``torch.no_grad()``, switched on only around the
    computation so that the caller's grad mode between yields is untouched.
    Tensors are yielded as computed, not copied.
    """
    if rule.max_iter < 1:
        raise ValueError(f"max_iter must be at least 1; got {rule.max_iter}")
    if not rule.tol >= 0 or not rule.diverge_at > 0:
        raise ValueError(f"tol must be ≥ 0 and diverge_at > 0; got {rule}")
    if isinstance(metrics_every, bool) or not isinstance(metrics_every, int) or metrics_every < 1:
        raise ValueError(f"metrics_every must be an int ≥ 1; got {metrics_every!r}")
    acc = NoAcceleration() if accelerator is None else accelerator
    start = time.perf_counter()
    with torch.no_grad():
        z = fp_map.z0
        x = fp_map.image(z)
        if reference is not None and tuple(reference.shape) != tuple(x.shape):
            raise ValueError(
                f"reference has shape {tuple(reference.shape)}; the image is {tuple(x.shape)}"
            )
        meter = _Meter(fp_map, reference, x.shape)
        state = acc.init(z)
    for k in range(1, rule.max_iter + 1):
        measured = k % metrics_every == 0 or k == rule.max_iter
        with torch.no_grad():
            Tz = fp_map.T(z)
            z_next, state = acc.step(z, Tz, state)
            x_next = fp_map.image(z_next)
            scalars = [_relative_residual(z, Tz), torch.linalg.vector_norm(z_next, ord=math.inf)]
            if measured:
                scalars += meter(x_next)
            residual, peak, consistency, psnr, ssim = _floats(scalars, 5)
        if not (math.isfinite(residual) and peak <= rule.diverge_at):
            with torch.no_grad():
                consistency, psnr, ssim = _floats(meter(x), 3)
            seconds = time.perf_counter() - start
            yield Iterate(
                k,
                x,
                torch.zeros_like(x),
                residual,
                consistency,
                psnr,
                ssim,
                seconds,
                Status.DIVERGED,
            )
            return
        if residual < rule.tol:
            status = Status.CONVERGED
        elif k == rule.max_iter:
            status = Status.MAX_ITER
        elif stop is not None and stop():
            status = Status.STOPPED
        else:
            status = Status.RUNNING
        with torch.no_grad():
            if status is not Status.RUNNING and not measured:
                consistency, psnr, ssim = _floats(meter(x_next), 3)
            change = torch.sub(x_next, x).abs_()
        seconds = time.perf_counter() - start
        yield Iterate(k, x_next, change, residual, consistency, psnr, ssim, seconds, status)
        if status is not Status.RUNNING:
            return
        z, x = z_next, x_next


def solve(
    fp_map: FixedPointMap,
    accelerator: Accelerator | None = None,
    rule: StopRule = StopRule(),  # noqa: B008 - frozen, shared safely
    reference: Tensor | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    metrics_every: int = 1,
) -> Solution:
    """Drain :func:`iterate` into a :class:`Solution`.

    ``history`` holds one list per metric, one entry per iteration:
    ``residual``, ``consistency``, ``psnr``, ``ssim`` (``None`` without a
    reference, and for all three on iterations skipped by ``metrics_every``)
    and ``seconds``.
    """
    keys = ("residual", "consistency", "psnr", "ssim", "seconds")
    history: dict[str, list[float | None]] = {key: [] for key in keys}
    last = None
    for last in iterate(fp_map, accelerator, rule, reference, stop, metrics_every=metrics_every):
        for key in keys:
            history[key].append(getattr(last, key))
    assert last is not None  # max_iter ≥ 1 guarantees one iterate
    return Solution(
        x=last.x, status=last.status, iterations=last.k, seconds=last.seconds, history=history
    )
