"""Saved runs (``deq_explorer.runs``): the one ``.npz`` format of ``--out`` and the GUI."""

from __future__ import annotations

import numpy as np
import pytest

from deq_explorer import api, runs


@pytest.fixture
def problem():
    image = np.random.default_rng(0).random((24, 24), dtype=np.float32)
    return api.simulate(image, "sr:scale=2", noise=0.01, device="cpu")


def _run(problem, prior: str, n: int) -> runs.SavedRun:
    history = {"k": list(range(1, n + 1)), "residual": [0.5**k for k in range(n)],
               "consistency": [0.1] * n, "psnr": [20.0 + k for k in range(n)],
               "ssim": [None] * n, "seconds": [0.1] * n}  # fmt: skip
    return runs.SavedRun(problem.x_init()[0].numpy() + n, history, {"prior": prior})


def test_one_run_round_trips(problem, tmp_path):
    path = runs.save(tmp_path / "one.npz", problem, [_run(problem, "tv", 3)])
    assert runs.is_run_file(path)
    saved = runs.load(path)
    (run,) = saved.runs
    assert run.config["prior"] == "tv" and run.config["operator"] == "sr:scale=2"
    assert saved.problem["image_shape"] == [1, 24, 24]
    assert run.history == {
        "k": [1, 2, 3],
        "residual": [1.0, 0.5, 0.25],
        "consistency": [0.1] * 3,
        "psnr": [20.0, 21.0, 22.0],
        "ssim": [None] * 3,
    }  # fmt: skip  (seconds are not saved)
    np.testing.assert_allclose(run.x, problem.x_init()[0].numpy() + 3)
    np.testing.assert_allclose(saved.reference, problem.x_true[0].numpy())
    assert saved.y.shape == (1, 12, 12) and saved.init.shape == (1, 24, 24)


def test_several_runs_round_trip(problem, tmp_path):
    path = runs.save(
        tmp_path / "two.npz", problem, [_run(problem, "tv", 2), _run(problem, "identity", 4)]
    )
    with np.load(path, allow_pickle=False) as f:
        assert f["x"].shape == (2, 1, 24, 24) and {"history_0", "history_1"} <= set(f.files)
    saved = runs.load(path)
    assert [r.config["prior"] for r in saved.runs] == ["tv", "identity"]
    assert [len(r.history["k"]) for r in saved.runs] == [2, 4]
    assert saved.problem["operator"] == "sr:scale=2"


def test_other_files_are_not_runs(tmp_path):
    np.savez(tmp_path / "a.npz", y=np.zeros(3))
    assert not runs.is_run_file(tmp_path / "a.npz")
    with pytest.raises(runs.RunFileError, match="not a saved run"):
        runs.load(tmp_path / "a.npz")
    (tmp_path / "b.npz").write_bytes(b"junk")
    with pytest.raises(runs.RunFileError):
        runs.load(tmp_path / "b.npz")
