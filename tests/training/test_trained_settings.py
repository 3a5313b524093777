"""A trained prior carries the solve it was trained in; API and CLI use it unless overridden."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

import deq_explorer.api as dx
from deq_explorer.cli import main as cli_main
from deq_explorer.priors.checkpoint import read_metadata, register_checkpoint
from deq_explorer.registry import SpecError, format_spec, parse_spec, priors, solvers
from deq_explorer.training import TrainConfig, train


def test_format_spec_inverts_parse_spec_and_resolve_spells_out_defaults() -> None:
    for spec in ("red-sd", "pnp-pgm:gamma=2,tau=0.25", "mri:rate=0.1,mask=radial"):
        name, options = parse_spec(spec)
        assert format_spec(name, options) == spec
    assert solvers.resolve("red-sd") == "red-sd:gamma=0.6,tau=0.5"
    assert solvers.resolve("red-sd:tau=0.3") == "red-sd:gamma=0.6,tau=0.3"
    with pytest.raises(SpecError, match="no option 'gama'"):
        solvers.resolve("red-sd:gama=1")


@pytest.fixture(scope="module")
def trained(image_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("settings") / "deq.safetensors"
    config = TrainConfig(
        mode="deq", operators=("deblur:sigma=1.0",), noise=(0.01,), solver="red-sd:tau=0.4",
        accel="anderson:m=3", tol=1e-3, max_iter=10, backward_max_iter=10, data=str(image_dir),
        crop=24, batch=2, steps=2, val_images=1, val_crop=24, net={"depth": 3, "width": 8},
        out=str(out), device="cpu",
    )  # fmt: skip
    with contextlib.closing(train(config)) as events:
        for _ in events:
            pass
    return out


def test_training_records_the_full_solve(trained: Path) -> None:
    meta = read_metadata(trained)
    assert meta["solver"] == "red-sd:gamma=0.6,tau=0.4"
    assert meta["accel"] == "anderson:m=3" and meta["tol"] == pytest.approx(1e-3)
    assert dx.trained_settings(str(trained)) == {
        "solver": "red-sd:gamma=0.6,tau=0.4", "accel": "anderson:m=3", "tol": 1e-3,
    }  # fmt: skip
    assert dx.trained_settings("tv") == {} and dx.trained_settings("dncnn-awgn") == {}


def test_each_setting_the_caller_gives_wins_on_its_own(trained: Path) -> None:
    chosen = dx.solve_settings(str(trained), solver="pnp-pgm")
    assert chosen == {"solver": "pnp-pgm", "accel": "anderson:m=3", "tol": 1e-3}
    assert dx.solve_settings("tv") == dx.SOLVE_DEFAULTS


def test_reconstruct_uses_the_trained_settings_by_default(trained: Path) -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 1, 24, 24, generator=g)
    problem = dx.simulate(image, "deblur:sigma=1.0", noise=0.01, seed=0)
    default = dx.reconstruct(problem, prior=str(trained), max_iter=30)
    spelled = dx.reconstruct(
        problem, prior=str(trained), solver="red-sd:gamma=0.6,tau=0.4", accel="anderson:m=3",
        tol=1e-3, max_iter=30,
    )  # fmt: skip
    plain = dx.reconstruct(problem, prior=str(trained), solver="pnp-pgm", accel="none", tol=1e-4,
                           max_iter=30)  # fmt: skip
    assert default.iterations == spelled.iterations
    torch.testing.assert_close(default.x, spelled.x)
    assert not torch.allclose(default.x, plain.x)


def test_cli_shows_and_uses_the_trained_settings(trained: Path, capsys) -> None:
    name = register_checkpoint(trained, "settings-test-prior")
    try:
        assert cli_main(["priors"]) == 0
        listing = capsys.readouterr().out
        block = listing[listing.index("settings-test-prior") :]
        assert "solves with: red-sd:gamma=0.6,tau=0.4, anderson:m=3, tol 0.001" in block
        assert "{" not in block.splitlines()[2]  # readable, not raw JSON
        rc = cli_main(["reconstruct", "sample:camera", "--operator", "deblur:sigma=1.0",
                       "--prior", name, "--max-iter", "3", "--json"])  # fmt: skip
        assert rc == 0
        out = capsys.readouterr().out
        assert '"solver": "red-sd:gamma=0.6,tau=0.4"' in out and '"accel": "anderson:m=3"' in out
    finally:
        priors.unregister(name)


def test_the_validation_curve_plots(trained: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "curve.png"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "training_curve.py"), str(trained), str(out)],
        capture_output=True, text=True, cwd=root, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
