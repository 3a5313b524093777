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


def _measure(
    fp_map: FixedPointMap, x: Tensor, reference: Tensor | None, *extra: Tensor
) -> list[float | None]:
    """``extra`` scalars, then consistency, PSNR and SSIM of ``x`` (batch means) in one sync.

    PSNR and SSIM are ``None`` without a reference; SSIM also for images
    smaller than its window.
    """
    values = [*extra, batch_consistency(fp_map.op, x, fp_map.y).mean()]
    if reference is not None:
        values.append(batch_psnr(x, reference).mean())
        if min(x.shape[-2:]) >= SSIM_MIN_SIZE:
            values.append(batch_ssim(x, reference).mean())
    out: list[float | None] = torch.stack([v.double() for v in values]).tolist()
    return out + [None] * (len(extra) + 3 - len(out))


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

    The maps run under ``torch.no_grad()``, switched on only around the
    computation so that the caller's grad mode between yields is untouched.
    Tensors are yielded as computed, not copied.
    """
    if rule.max_iter < 1:
        raise ValueError(f"max_iter must be at least 1; got {rule.max_iter}")
    if not rule.tol >= 0 or not rule.diverge_at > 0:
        raise ValueError(f"tol must be ≥ 0 and diverge_at > 0; got {rule}")
    acc = NoAcceleration() if accelerator is None else accelerator
    start = time.perf_counter()
    with torch.no_grad():
        z = fp_map.z0
        x = fp_map.image(z)
        if reference is not None and tuple(reference.shape) != tuple(x.shape):
            raise ValueError(
                f"reference has shape {tuple(reference.shape)}; the image is {tuple(x.shape)}"
            )
        state = acc.init(z)
    for k in range(1, rule.max_iter + 1):
        with torch.no_grad():
            Tz = fp_map.T(z)
            z_next, state = acc.step(z, Tz, state)
            x_next = fp_map.image(z_next)
            residual, peak, consistency, psnr, ssim = _measure(
                fp_map, x_next, reference, _relative_residual(z, Tz), z_next.abs().amax()
            )
        if not (math.isfinite(residual) and peak <= rule.diverge_at):
            with torch.no_grad():
                consistency, psnr, ssim = _measure(fp_map, x, reference)
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
            change = (x_next - x).abs()
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
) -> Solution:
    """Drain :func:`iterate` into a :class:`Solution`.

    ``history`` holds one list per metric, one entry per iteration:
    ``residual``, ``consistency``, ``psnr``, ``ssim`` (``None`` without a
    reference) and ``seconds``.
    """
    keys = ("residual", "consistency", "psnr", "ssim", "seconds")
    history: dict[str, list[float | None]] = {key: [] for key in keys}
    last = None
    for last in iterate(fp_map, accelerator, rule, reference, stop):
        for key in keys:
            history[key].append(getattr(last, key))
    assert last is not None  # max_iter ≥ 1 guarantees one iterate
    return Solution(
        x=last.x, status=last.status, iterations=last.k, seconds=last.seconds, history=history
    )
