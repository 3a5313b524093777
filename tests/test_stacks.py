"""Stacks and volumes: one problem per image, solved in batches, the same as one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deq_explorer import api, stacks
from deq_explorer.errors import ProblemError, RequestError
from deq_explorer.images import load_image, to_gray


@pytest.fixture(scope="module")
def volume():
    """A (2, 3, 1, 32, 32) stack: two times three slices of the phantom, each brighter."""
    phantom = load_image("sample:phantom")[:, ::8, ::8]
    return np.stack([phantom * (0.4 + 0.1 * i) for i in range(6)]).reshape(2, 3, 1, 32, 32)


def test_image_i_is_simulated_alone_with_seed_plus_i(volume):
    stack = stacks.simulate_stack(volume, "mri:rate=0.3", noise=0.02, seed=7, device="cpu")
    assert len(stack) == 6 and stack.shape == (2, 3) and stack.has_truth
    alone = api.simulate(volume[1, 2], "mri:rate=0.3", noise=0.02, seed=7 + 5, device="cpu")
    torch.testing.assert_close(stack.at((1, 2)).y, alone.y)
    assert all(p.op is stack.op and p.sim_op is stack.op for p in stack.problems)  # shared
    assert stack.measurements().shape == (6, 1, 32, 32) and stack.x_init().shape == (6, 1, 32, 32)
    torch.testing.assert_close(stack.x_init()[5:], alone.x_init())


def test_a_batched_solve_is_the_solve_of_each_image(volume):
    stack = stacks.simulate_stack(volume, "deblur:sigma=1.0", noise=0.01, device="cpu")
    request = api.Request(prior="tv", max_iter=15, tol=0.0)
    its = list(stacks.run_stack(stack, request, batch=4))
    assert [(s.start, s.stop) for s in its] == [(0, 4)] * 15 + [(4, 6)] * 15
    assert all(s.total == 6 for s in its) and its[-1].iterate.x.shape == (2, 1, 32, 32)
    assert its[0].psnr is None and len(its[14].psnr) == 4 and len(its[-1].ssim) == 2
    solution = stacks.reconstruct_stack(stack, request, batch=4)
    assert solution.x.shape == (2, 3, 1, 32, 32)
    for i, problem in enumerate(stack.problems):
        alone = api.reconstruct(problem, request)
        torch.testing.assert_close(solution.x.reshape(6, 1, 32, 32)[i : i + 1], alone.x)
        assert solution.record.psnr[i] == pytest.approx(alone.history["psnr"][-1], abs=1e-4)
    assert solution.record.status == ["max_iter"] * 6 and solution.record.iterations == [15] * 6


def test_a_batch_converges_when_its_slowest_image_has(volume):
    stack = stacks.simulate_stack(volume, "denoise", noise=0.05, device="cpu")
    request = api.Request(prior="tv", max_iter=200, tol=1e-3)
    together = stacks.reconstruct_stack(stack, request, batch=6).record.iterations
    alone = [api.reconstruct(p, request).iterations for p in stack.problems]
    assert together == [max(alone)] * 6 and min(alone) <= max(alone)


def test_stop_ends_the_batch_and_the_stack(volume):
    stack = stacks.simulate_stack(volume, "denoise", noise=0.05, device="cpu")
    seen = []

    def stop():
        return len(seen) >= 3

    for s in stacks.run_stack(stack, api.Request(prior="tv", max_iter=50, tol=0.0), batch=2,
                              stop=stop):  # fmt: skip
        seen.append(s)
    assert [s.start for s in seen] == [0] * 4 and seen[-1].iterate.status.value == "stopped"
    solution = stacks.reconstruct_stack(
        stack, api.Request(prior="tv", max_iter=5, tol=0.0), batch=2, stop=lambda: True
    )
    assert solution.record.status == ["stopped"] * 2 + [None] * 4 and solution.record.solved == 2
    assert not solution.x.reshape(6, -1)[2:].any()  # not solved: zeros


def test_batch_size_follows_free_memory(volume, monkeypatch):
    stack = stacks.simulate_stack(volume, "denoise", device="cpu")
    cost = api.Cost(seconds_per_iteration=0.01, bytes=1000, available=3000)
    monkeypatch.setattr(api, "estimate_cost", lambda problem, prior: cost)
    assert stacks.batch_size(stack, "tv") == 1  # half of 3000 bytes holds one solve
    cost = api.Cost(seconds_per_iteration=0.01, bytes=1000, available=10**9)
    assert stacks.batch_size(stack, "tv") == 6  # every image, at most MAX_BATCH
    assert stacks.batch_size(stack, "tv", most=4) == 4
    cost = api.Cost(seconds_per_iteration=0.01, bytes=1000, available=None)
    assert stacks.batch_size(stack, "tv") == 6


def test_measured_stacks_and_refusals(volume):
    ys = stacks.simulate_stack(volume, "deblur:sigma=1.0", device="cpu").measurements()
    stack = stacks.from_measurements(ys.reshape(2, 3, 1, 32, 32), "deblur:sigma=1.0", device="cpu")
    assert stack.shape == (2, 3) and not stack.has_truth and stack.batch(0, 3).x_true is None
    solution = stacks.reconstruct_stack(stack, api.Request(prior="tv", max_iter=2), batch=4)
    assert solution.record.psnr == [None] * 6
    with pytest.raises(ProblemError, match="leading axis"):
        stacks.simulate_stack(volume[0, 0], "denoise")
    with pytest.raises(RequestError, match="init"):
        next(stacks.run_stack(stack, api.Request(prior="tv", w=torch.zeros(1, 1, 32, 32))))


def test_to_gray_keeps_leading_axes():
    rgb = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)
    gray = to_gray(rgb)
    assert gray.shape == (4, 1, 8, 8)
    np.testing.assert_allclose(gray[2], to_gray(rgb[2]), rtol=1e-6)
