"""Defaults that scale with the problem, and the strength chosen from the data (issue 14)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from deq_explorer import api, cli, metrics
from deq_explorer.images import load_image
from deq_explorer.priors.checkpoint import SIGMA_FLOOR, sigma_rule
from deq_explorer.scale import Scale, noise_norm
from deq_explorer.tuning import FACTOR, Candidate, drain, minimise, root


@pytest.fixture(scope="module")
def crop48():
    return load_image("sample:camera")[:, 180:228, 180:228].copy()


def test_minimise_finds_the_minimum_of_a_unimodal_score_within_its_last_step():
    calls = []

    def score(v: float) -> Candidate:
        calls.append(v)
        return Candidate(v, (math.log(v) - math.log(0.3)) ** 2, 1)

    value, tried, note = drain(minimise(score, 0.01))  # three factors of 4 below the minimum
    assert abs(math.log(value / 0.3)) <= math.log(FACTOR) / 4  # within the last half-width
    assert [c.value for c in tried] == calls and len(set(calls)) == len(calls)  # no repeats
    assert "edge" not in note


def test_minimise_says_when_the_best_is_at_the_edge_of_its_range():
    value, tried, note = drain(minimise(lambda v: Candidate(v, v, 1), 1.0, max_out=2))
    assert value == min(c.value for c in tried) and "edge" in note


def test_root_bisects_a_monotone_ratio_to_its_tolerance():
    value, _, note = drain(root(lambda v: Candidate(v, v / 0.02, 1), 1.0, rtol=0.05))
    assert abs(value / 0.02 - 1) <= 0.05 and "matches" in note
    value, _, note = drain(root(lambda v: Candidate(v, 0.5, 1), 1.0, max_candidates=4))
    assert "not bracketed" in note and value == 1.0  # the ratio never reaches 1


def test_noise_norm_is_the_norm_of_the_simulated_noise(crop48):
    for op, sampled in (("inpaint:p=0.5", 0.5), ("mri:rate=0.3", 0.3), ("sr:scale=2", 1.0)):
        clean = api.simulate(crop48, op, noise=0.0)
        noisy = api.simulate(crop48, op, noise=0.05, seed=3)
        e = float(torch.linalg.vector_norm(noisy.y - clean.y))
        expected = noise_norm(noisy.op, noisy.y, 0.05)
        assert expected == pytest.approx(e, rel=0.1)
        assert api.problem_scale(noisy).sampling == pytest.approx(sampled, abs=0.03)


def test_denoiser_noise_input_follows_the_noise_unless_given(crop48):
    awgn = sigma_rule({"mode": "awgn"}, 0.03)
    assert awgn(Scale(0.05, denoising=True)) == {"sigma": pytest.approx(0.06)}
    assert awgn(Scale(0.0, denoising=True)) == {"sigma": SIGMA_FLOOR}
    assert awgn(Scale(0.01)) == {"sigma": 0.03}  # never below its recorded input
    assert awgn(Scale(0.05)) == {"sigma": pytest.approx(0.05 + SIGMA_FLOOR)}
    assert awgn(Scale(0.03, sampling=0.25)) == {"sigma": pytest.approx(0.048)}  # a mask
    learned = sigma_rule({"mode": "deq", "recipe": {"noise": [0.01]}}, 0.02)
    assert learned(Scale(0.01)) == {"sigma": pytest.approx(0.02)}  # its training noise
    assert learned(Scale(0.0)) == {"sigma": pytest.approx(0.02)}  # kept below it
    assert learned(Scale(0.03)) == {"sigma": pytest.approx(0.02 * 0.033 / 0.013)}
    assert sigma_rule({"mode": "mcnet", "recipe": {"noise": [0.0]}}, 0.02) is None
    assert sigma_rule({"mode": "deq"}, 0.02) is None  # no training noise recorded
    denoise = api.simulate(crop48, "denoise", noise=0.05)
    assert api.problem_defaults("dncnn-awgn", denoise) == "dncnn-awgn:sigma=0.06"
    assert api.problem_defaults("dncnn-awgn:sigma=0.1", denoise) == "dncnn-awgn:sigma=0.1"


def test_mcnet_eps_is_the_noise_norm_and_not_the_training_problems(crop48):
    problem = api.simulate(crop48, "sr-bicubic:scale=2", noise=0.02)
    spec = api.problem_defaults("mcnet-admm:beta=1.0", problem, api.solvers)
    assert spec == f"mcnet-admm:beta=1.0,eps={noise_norm(problem.op, problem.y, 0.02):.6g}"
    trained = api.settings_of({"solver": "mcnet-admm:eps=0.0,beta=1.5,rho=1.0"})
    assert trained["solver"] == "mcnet-admm:beta=1.5,rho=1.0"


def test_auto_strength_beats_both_ends_of_its_search_and_is_what_the_solve_uses(crop48):
    problem = api.simulate(crop48, "deblur:sigma=1.6", noise=0.02, seed=0)
    seen = []
    tuning = api.tune(problem, prior="tv:weight=auto", max_iter=40, on_candidate=seen.append)
    assert tuning.option == "weight" and tuning.method == "sure"
    assert tuning.candidates == tuple(seen) and len(seen) >= 5

    def psnr(weight: float) -> float:
        s = api.reconstruct(problem, prior=f"tv:weight={weight:.6g}", max_iter=40)
        return metrics.psnr(s.x, problem.x_true)

    values = [c.value for c in tuning.candidates]
    assert psnr(tuning.value) > max(psnr(min(values)), psnr(max(values)))
    again = []
    iterates = list(
        api.run(problem, prior="tv:weight=auto", max_iter=40, on_candidate=again.append)
    )
    assert again == seen  # the stream tunes first, the same way
    assert torch.equal(iterates[-1].x, api.reconstruct(problem, prior=tuning.spec, max_iter=40).x)


def test_discrepancy_matches_the_residual_with_the_noise(crop48):
    problem = api.simulate(crop48, "sr:scale=2", noise=0.02, seed=0)
    tuning = api.tune(problem, prior="tv:weight=auto", method="discrepancy", max_iter=40)
    best = min(tuning.candidates, key=lambda c: abs(math.log(c.score)))
    assert best.value == tuning.value and abs(best.score - 1) <= 0.1


def test_auto_needs_noise_and_a_positive_option(crop48):
    clean = api.simulate(crop48, "deblur", noise=0.0)
    tuning = api.tune(clean, prior="tv:weight=auto")
    assert tuning.candidates == () and "no noise" in tuning.note
    assert tuning.spec == api.problem_defaults("tv", clean)
    noisy = api.simulate(crop48, "deblur", noise=0.01)
    with pytest.raises(api.RequestError, match="no option"):
        api.tune(noisy, prior="tv:weight=0.01")
    with pytest.raises(api.RequestError, match="one option"):
        api.tune(noisy, prior="tv:weight=auto,iters=auto")
    with pytest.raises(api.RequestError, match="method"):
        api.tune(noisy, prior="tv:weight=auto", method="guess")


def test_cli_tunes_auto_and_reports_the_candidates(tmp_path, capsys, crop48):
    import numpy as np

    path = tmp_path / "crop.npy"
    np.save(path, crop48[0])
    code = cli.main(["reconstruct", str(path), "--operator", "denoise", "--noise", "0.05",
                     "--prior", "tv:weight=auto", "--max-iter", "30", "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["tuning"]["option"] == "weight"
    assert out["prior"] == f"tv:weight={out['tuning']['value']:.6g}"
    assert len(out["tuning"]["candidates"]) >= 3
