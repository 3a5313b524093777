"""The Qt-free run model under the Reconstruct and Compare panels (no viewer needed)."""

import numpy as np
import pytest
import torch

from deq_explorer import api, stacks
from deq_explorer._napari._jobs import compare_job, solve_job, stack_job
from deq_explorer._napari._run import Comparison, Run, StackPolicy, StackRun, takes_start

pytest.importorskip("napari")  # the model lives in the GUI package


@pytest.fixture(scope="module")
def problem():
    g = np.random.default_rng(0)
    return api.simulate(g.random((24, 24)), "deblur:sigma=1.0", noise=0.01)


def never() -> bool:
    return False


@pytest.fixture(autouse=True)
def _grad_mode_kept():
    """The jobs set grad mode for their (worker) thread; here they run in the test's."""
    mode = torch.is_grad_enabled()
    yield
    torch.set_grad_enabled(mode)


def test_a_run_keeps_frames_stack_and_metadata(problem) -> None:
    request = api.Request(prior="tv:weight=0.02", max_iter=7, tol=0).settled()
    policy = StackPolicy.within(budget_mb=1, every=3, max_iter=7, shape=(1, 24, 24))
    assert policy == StackPolicy(every=3, capacity=3)  # k = 3, 6 and the last
    run = Run(problem, request, stack=policy, source={"measurement": "y", "problem": {}})
    assert run.progress() == 0 and run.last is None and run.final_text().startswith("failed")
    frames = list(solve_job(problem, request, stop=never))
    run.add(frames[:4])
    assert run.progress() == 4 and not run.ended and run.live_text().startswith("iteration 4")
    run.add(frames[4:])
    assert run.ended and run.finished and run.progress() == 7
    assert run.stack_ks == [3, 6, 7]
    np.testing.assert_array_equal(run.stack()[-1], frames[-1].x)
    meta = run.metadata("reconstruction")
    assert meta["measurement"] == "y" and meta["status"] == "max_iter"
    assert meta["config"]["max_iter"] == 7 and meta["metrics"]["iterations"] == 7
    assert meta["history"]["k"] == list(range(1, 8))
    assert run.final_text().startswith("stopped at the iteration cap after 7 iterations")
    assert "residual ratio ≈" in run.final_text() and 0 < meta["metrics"]["rate"] < 1


def test_a_map_that_does_not_contract_is_said_so(problem) -> None:
    """SD-RED with step 2.1 from zeros on the identity prior: the error grows each step."""
    request = api.Request(prior="identity", solver="red-sd:gamma=2.1", accel="none",
                          max_iter=20, tol=0, w=np.zeros((1, 24, 24), np.float32))  # fmt: skip
    run = Run(problem, request)
    run.add(list(solve_job(problem, request, stop=never)))
    assert run.metadata("reconstruction")["metrics"]["rate"] > 1
    assert "does not contract" in run.final_text()


def test_the_stack_policy_respects_the_budget() -> None:
    tiny = StackPolicy.within(budget_mb=1, every=1, max_iter=1000, shape=(3, 512, 512))
    assert tiny.capacity == 1  # one 3 MB iterate is over budget: still keep one
    assert StackPolicy.within(256, 1, 1000, (1, 64, 64)).capacity == 1000


def test_a_comparison_dispatches_frames_to_its_runs(problem) -> None:
    requests = [api.Request(prior=p, max_iter=3, tol=0).settled() for p in ("identity", "tv")]
    model = Comparison(problem, requests)
    assert model.progress() == (0, 6)
    frames = list(compare_job(problem, requests, stop=never))
    assert model.add(frames[:4]) == [0, 1]
    assert model.runs[0].finished and not model.runs[1].ended
    assert model.final_text() == "stopped: 1 of 2 runs finished"
    model.add(frames[4:])
    assert model.progress() == (6, 6) and model.final_text() == "all 2 runs finished"


def test_the_start_image_need_comes_from_the_registry() -> None:
    assert takes_start("mcnet-admm") and takes_start("mcnet-admm:beta=2")
    assert not takes_start("pnp-pgm") and not takes_start(None) and not takes_start("nope:x")


def test_a_stack_run_fills_its_images_batch_by_batch(monkeypatch) -> None:
    images = np.random.default_rng(1).random((5, 1, 24, 24)).astype(np.float32)
    stack = stacks.simulate_stack(images, "deblur:sigma=1.0", noise=0.01)
    monkeypatch.setattr(stacks, "MAX_BATCH", 2)
    request = api.Request(prior="tv:weight=0.02", max_iter=4, tol=0).settled()
    run = StackRun(stack, request, source={"measurement": "y · deblur · vol", "problem": {}})
    assert run.total == 20 and run.progress() == 0 and run.result_name == "tv · deblur · vol"
    frames = list(stack_job(stack, request, stop=never))
    assert [(f.start, f.stop) for f in frames] == [(0, 2)] * 4 + [(2, 4)] * 4 + [(4, 5)] * 4
    assert frames[3].x.shape == (2, 1, 24, 24) and len(frames[3].psnr_items) == 2
    run.add(frames[:6])
    assert run.batch == 2 and run.progress() == 2 * 4 + 2 * 2
    assert run.take_fresh() == (0, 4) and run.take_fresh() is None  # the first images of each
    assert run.live_text().startswith("images 3–4 of 5 (batches of 2) · iteration 2")
    assert run.series_name() == "images 3–4" and run.history()["k"] == [1, 2]
    run.add(frames[6:])
    assert run.progress() == run.total and run.finished and run.series_name() == "image 5"
    assert run.status() == "max_iter" and run.record.iterations == [4] * 5
    np.testing.assert_allclose(run.x[4], frames[-1].x[0])
    np.testing.assert_allclose(run.per_image()["psnr"], run.record.psnr)
    assert run.final_text().startswith("5 images: 5 stopped at the iteration cap")
    meta = run.metadata("reconstruction")
    assert meta["stack"] == {"shape": [5], "batch": 2} and meta["measurement"] == "y · deblur · vol"
    assert meta["config"]["prior"] == "tv:weight=0.02" and len(meta["images"]["ssim"]) == 5
    assert run.images().shape == (5, 1, 24, 24)
