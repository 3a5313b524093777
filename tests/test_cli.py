"""``deq-explorer``: outputs, saved results, exit codes and messages for bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.io
import torch

from deq_explorer import api, cli, registry, runs
from deq_explorer.images import load_image

FAST = ["--max-iter", "5", "--prior", "tv:weight=0.02"]
JSON_KEYS = {"psnr", "ssim", "psnr_init", "iterations", "status", "seconds", "consistency"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """48×48 gray png, 47×47 png, 48×48 RGB png, a NaN npy and a 1-pixel png."""
    folder = tmp_path_factory.mktemp("images")
    gray = load_image("sample:camera")[0, 180:228, 180:228]
    rgb = load_image("sample:astronaut")[:, 100:148, 200:248]
    paths = {
        "gray": folder / "gray.png",
        "odd": folder / "odd.png",
        "rgb": folder / "rgb.png",
        "nan": folder / "nan.npy",
        "dot": folder / "dot.png",
        "text": folder / "notes.png",
    }
    skimage.io.imsave(paths["gray"], (gray * 255).astype(np.uint8), check_contrast=False)
    skimage.io.imsave(paths["odd"], (gray[:47, :47] * 255).astype(np.uint8), check_contrast=False)
    rgb8 = (np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8)
    skimage.io.imsave(paths["rgb"], rgb8, check_contrast=False)
    np.save(paths["nan"], np.where(gray > 0.5, np.nan, gray))
    skimage.io.imsave(paths["dot"], np.zeros((1, 1), np.uint8), check_contrast=False)
    paths["text"].write_text("not a picture")
    return {k: str(v) for k, v in paths.items()}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- reconstruct -----------------------------------------------------------------------


def test_reconstruct_text(capsys, images):
    code, out, err = _run(capsys, "reconstruct", images["gray"], "--operator", "sr:scale=2", *FAST)
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "sr:scale=2 → sr:scale=2  noise 0.01"
    fields = dict(line.split(maxsplit=1) for line in out.splitlines()[1:])
    assert fields["prior"] == "tv:weight=0.02" and fields["solver"] == "pnp-pgm"
    assert fields["status"] in ("converged", "max_iter") and 1 <= int(fields["iterations"]) <= 5
    assert float(fields["psnr"]) > 15 and 0 < float(fields["ssim"]) <= 1


def test_a_map_that_does_not_contract_is_said_so_at_the_cap(capsys, images):
    """SD-RED with step 2.1 on MRI from zeros: the measured error grows 1.1× per iteration."""
    code, out, err = _run(capsys, "reconstruct", images["gray"], "--operator", "mri:rate=0.3",
                          "--prior", "identity", "--solver", "red-sd:gamma=2.1", "--accel",
                          "none", "--init", "zero", "--max-iter", "30", "--json")  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["status"] == "max_iter" and result["rate"] > 1
    assert "did not converge" in err and "does not contract" in err


def test_reconstruct_json(capsys, images):
    code, out, _ = _run(
        capsys, "reconstruct", images["gray"], "--operator", "deblur:sigma=1.6",
        "--accel", "nesterov", "--json", *FAST,
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)  # exactly one JSON object on stdout
    assert JSON_KEYS | {"residuals"} <= set(result)
    assert result["status"] in ("converged", "max_iter")
    assert result["iterations"] == len(result["residuals"]) <= 5
    assert result["residuals"][-1] == result["residual"]
    assert result["psnr"] > result["psnr_init"]  # TV deblurring improves on init(y)
    assert 0 < result["ssim"] <= 1 and 0 <= result["consistency"] < 1 and result["seconds"] > 0
    assert result["operator"] == result["solve_operator"] == "deblur:sigma=1.6"
    assert result["accel"] == "nesterov" and result["image_shape"] == [1, 48, 48]


def test_reconstruct_json_matches_the_api(capsys, images):
    argv = ["reconstruct", images["gray"], "--operator", "mri:rate=0.3", "--noise", "0.02",
            "--seed", "7", "--accel", "none", "--tol", "0", "--json", *FAST]  # fmt: skip
    result = json.loads(_run(capsys, *argv)[1])
    problem = api.simulate(images["gray"], "mri:rate=0.3", noise=0.02, seed=7)
    solution = api.reconstruct(problem, prior="tv:weight=0.02", max_iter=5, tol=0)
    assert result["iterations"] == solution.iterations == 5
    assert result["residuals"] == pytest.approx(solution.history["residual"])
    from deq_explorer import metrics

    assert result["psnr"] == pytest.approx(metrics.psnr(solution.x, problem.x_true))


def test_mismatch_and_crop(capsys, images):
    code, out, _ = _run(
        capsys, "reconstruct", images["odd"], "--operator", "sr:scale=2", "--crop",
        "--solve-operator", "sr:scale=2,sigma=1.5", "--json", *FAST,
    )  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["image_shape"] == [1, 46, 46]
    assert result["solve_operator"] == "sr:scale=2,sigma=1.5" != result["operator"]


def test_gray_flag_makes_rgb_fit_mri(capsys, images):
    code, out, _ = _run(
        capsys, "reconstruct", images["rgb"], "--operator", "mri:rate=0.3", "--gray", "--json",
        *FAST,
    )  # fmt: skip
    assert code == 0 and json.loads(out)["image_shape"] == [1, 48, 48]


def test_out_npz(capsys, images, tmp_path):
    target = tmp_path / "result.npz"
    code, out, _ = _run(
        capsys, "reconstruct", images["gray"], "--operator", "sr:scale=2", "--json",
        "--out", str(target), *FAST,
    )  # fmt: skip
    assert code == 0
    printed = json.loads(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.npz"]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with np.load(target, allow_pickle=False) as saved:
        assert set(saved.files) == {"x", "y", "reference", "init", "history", "config"}
        assert saved["x"].shape == saved["reference"].shape == saved["init"].shape == (1, 48, 48)
        assert saved["y"].shape == (1, 24, 24)
        np.testing.assert_allclose(saved["reference"], load_image(images["gray"]), atol=1e-6)
        history = saved["history"]
        assert list(history["k"]) == list(range(1, printed["iterations"] + 1))
        np.testing.assert_allclose(history["residual"], printed["residuals"])
        assert history.dtype.names == ("k", "residual", "consistency", "psnr", "ssim")
        config = json.loads(str(saved["config"]))
        from deq_explorer.metrics import psnr

        assert psnr(torch.from_numpy(saved["x"]), torch.from_numpy(saved["reference"])) == (
            pytest.approx(printed["psnr"], abs=1e-4)
        )
    assert config["operator"] == "sr:scale=2" and config["prior"] == "tv:weight=0.02"
    assert config["psnr"] == printed["psnr"]


def test_out_mri_keeps_complex_measurement(capsys, images, tmp_path):
    target = tmp_path / "mri.npz"
    argv = ["reconstruct", images["gray"], "--operator", "mri:rate=0.3", "--out", str(target)]
    assert _run(capsys, *argv, *FAST)[0] == 0
    with np.load(target) as saved:
        assert np.iscomplexobj(saved["y"]) and saved["y"].shape == (1, 48, 48)


MEASURED = ["denoise", "deblur:sigma=1.0", "sr:scale=2", "sr-bicubic:scale=2", "inpaint:p=0.5",
            "mri:rate=0.3"]  # fmt: skip


def test_every_builtin_operator_is_listed_in_measured():
    assert {registry.parse_spec(s)[0] for s in MEASURED} == set(registry.operators.names()) - {
        name
        for name in registry.operators.names()
        if registry.operators.entry(name).source != "builtin"
    }


@pytest.mark.parametrize("operator", MEASURED)
def test_a_saved_measurement_reconstructs_with_and_without_reference(
    capsys, images, tmp_path, operator
):
    """``--measurement`` runs for every built-in operator; the result equals the simulated run."""
    saved = tmp_path / "sim.npz"
    argv = ["--operator", operator, "--json", *FAST]
    code, out, _ = _run(capsys, "reconstruct", images["gray"], "--out", str(saved), *argv)
    assert code == 0
    simulated = json.loads(out)
    code, out, err = _run(capsys, "reconstruct", "--measurement", str(saved), *argv)
    assert code == 0, err
    blind = json.loads(out)
    assert blind["psnr"] is None and blind["psnr_init"] is None  # no reference, no PSNR
    assert blind["residuals"] == pytest.approx(simulated["residuals"], rel=1e-5)
    code, out, _ = _run(
        capsys, "reconstruct", "--measurement", str(saved), "--reference", images["gray"], *argv
    )
    assert code == 0
    assert json.loads(out)["psnr"] == pytest.approx(simulated["psnr"], abs=1e-4)


def test_measurement_files_and_their_mistakes(capsys, images, tmp_path):
    low = load_image(images["gray"])[:, ::2, ::2]
    np.save(tmp_path / "low.npy", low)
    ok = ["reconstruct", "--measurement", str(tmp_path / "low.npy"), *FAST]
    assert _run(capsys, *ok, "--operator", "sr:scale=2")[0] == 0
    skimage.io.imsave(tmp_path / "low.png", (low[0] * 255).astype(np.uint8), check_contrast=False)
    png = ["reconstruct", "--measurement", str(tmp_path / "low.png"), *FAST]
    assert _run(capsys, *png, "--operator", "sr:scale=2")[0] == 0
    code, out, _ = _run(capsys, "compare", "--measurement", str(tmp_path / "low.npy"),
                        "--operator", "sr:scale=2", "--prior", "tv", "--prior", "identity",
                        "--max-iter", "3", "--json")  # fmt: skip
    assert code == 0 and [r["psnr"] for r in json.loads(out)["runs"]] == [None, None]
    np.savez(tmp_path / "two.npz", a=low, b=low)
    cases = [
        (["--measurement", str(tmp_path / "low.npy"), "--operator", "mri:rate=0.3"],
         "measures complex k-space"),
        (["--measurement", str(tmp_path / "two.npz")], "name the measurement 'y'"),
        (["--measurement", str(tmp_path / "none.npy")], "does not exist"),
        (["--measurement", str(tmp_path / "low.npy"), images["gray"]], "replaces IMAGE"),
        (["--measurement", str(tmp_path / "low.npy"), "--operator", "sr:scale=2", "--reference",
          images["gray"] + "x"], "does not exist"),
        (["--measurement", str(tmp_path / "low.npy"), "--operator", "sr:scale=2", "--reference",
          images["odd"]], "the reference is (1, 47, 47)"),
        ([], "give an IMAGE"),
        ([images["gray"], "--reference", images["gray"]], "goes with --measurement"),
    ]  # fmt: skip
    for argv, message in cases:
        code, _, err = _run(capsys, "reconstruct", *argv, *FAST)
        assert code == 2 and message in err, (argv, err)


def test_error_during_solve_leaves_no_file(capsys, images, tmp_path, monkeypatch):
    def failing_reconstruct(*args, on_iterate=None, **kwargs):
        raise RuntimeError("solver blew up")

    monkeypatch.setattr(api, "reconstruct", failing_reconstruct)
    target = tmp_path / "result.npz"
    with pytest.raises(RuntimeError, match="blew up"):
        cli.main(["reconstruct", images["gray"], "--out", str(target), *FAST])
    assert list(tmp_path.iterdir()) == []


def test_error_while_writing_leaves_no_file(capsys, images, tmp_path, monkeypatch):
    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs.np, "savez", failing_savez)
    target = tmp_path / "result.npz"
    code, _, err = _run(capsys, "reconstruct", images["gray"], "--out", str(target), *FAST)
    assert code == 2 and "cannot write --out" in err and "No space left" in err
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_whole(capsys, images, tmp_path):
    target = tmp_path / "result.npz"
    target.write_bytes(b"old")
    assert _run(capsys, "reconstruct", images["gray"], "--out", str(target), *FAST)[0] == 0
    with np.load(target) as saved:
        assert "x" in saved.files


# -- bad input: exit code 2, the problem and the fix on stderr ---------------------------


BAD_INPUTS = {
    "missing file": (["/no/such/image.png"], ["does not exist", "sample:NAME"]),
    "not an image": (["{text}"], ["cannot read", "not an image"]),
    "1 pixel": (["{dot}"], ["1x1", "at least 8x8"]),
    "NaN pixels": (["{nan}"], ["NaN or Inf"]),
    "unknown sample": (["sample:lena"], ["unknown sample 'lena'", "camera", "brain"]),
    "sr not divisible": (
        ["{odd}", "--operator", "sr:scale=2"],
        ["not divisible", "46x46", "--crop"],
    ),
    "unknown operator": (["{gray}", "--operator", "blur"], ["unknown operator", "deblur", "mri"]),
    "unknown solve operator": (
        ["{gray}", "--solve-operator", "nope"],
        ["unknown operator 'nope'", "denoise"],
    ),
    "unknown prior": (["{gray}", "--prior", "bm3d"], ["unknown prior 'bm3d'", "identity, tv"]),
    "unknown solver": (["{gray}", "--solver", "cg"], ["unknown solver 'cg'", "pnp-pgm", "red-sd"]),
    "unknown accel": (["{gray}", "--accel", "broyden"], ["unknown accelerator", "anderson"]),
    "bad option": (["{gray}", "--operator", "mri:rat=0.1"], ["no option 'rat'", "rate="]),
    "rate 0": (["{gray}", "--operator", "mri:rate=0"], ["rate must lie in (0, 1]"]),
    "rate 1.5": (["{gray}", "--operator", "mri:rate=1.5"], ["rate must lie in (0, 1]", "1.5"]),
    "p 1": (["{gray}", "--operator", "inpaint:p=1.0"], ["p must lie in [0, 1)"]),
    "negative sigma": (["{gray}", "--operator", "deblur:sigma=-1"], ["sigma", ">= 0"]),
    "gamma 0": (["{gray}", "--solver", "pnp-pgm:gamma=0"], ["gamma must be a positive number"]),
    "negative gamma": (["{gray}", "--solver", "red-sd:gamma=-0.5"], ["gamma must be a positive"]),
    "rgb to mri": (["{rgb}", "--operator", "mri"], ["single-channel", "--gray"]),
    "solve-operator shape": (
        ["{gray}", "--operator", "sr:scale=2", "--solve-operator", "sr:scale=4"],
        ["(1, 12, 12)", "(1, 24, 24)"],
    ),
    "negative noise": (["{gray}", "--noise", "-0.1"], ["--noise must be >= 0"]),
    "max-iter 0": (["{gray}", "--max-iter", "0"], ["--max-iter must be a positive integer"]),
    "negative tol": (["{gray}", "--tol", "-1"], ["--tol must be a number >= 0"]),
    "out suffix": (["{gray}", "--out", "result.txt"], ["--out must end with .npz"]),
    "out folder": (["{gray}", "--out", "/no/such/folder/r.npz"], ["does not exist", "create it"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_a_clear_message(capsys, images, case):
    args, needles = BAD_INPUTS[case]
    args = [a.format(**images) for a in args]
    # FAST comes first so that a case's own --max-iter/--prior wins
    code, out, err = _run(capsys, "reconstruct", *FAST, *args)
    assert code == 2, err
    assert out == ""
    assert err.startswith("deq-explorer: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_cuda_exits_2(capsys, images):
    code, _, err = _run(capsys, "reconstruct", images["gray"], "--device", "cuda", *FAST)
    assert code == 2 and "CUDA" in err and "--device cpu" in err


def test_bad_input_nothing_written(capsys, images, tmp_path):
    target = tmp_path / "r.npz"
    argv = ["reconstruct", images["gray"], "--prior", "bm3d", "--out", str(target)]
    assert _run(capsys, *argv)[0] == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["reconstruct", "x.png", "--device", "tpu"],
        ["reconstruct", "x.png", "--max-iter", "many"],
        ["frobnicate"],
    ],
    ids=["device", "max-iter", "command"],
)
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "usage: deq-explorer" in capsys.readouterr().err


# -- compare ---------------------------------------------------------------------------


def test_compare_text(capsys, images):
    code, out, err = _run(
        capsys, "compare", images["gray"], "--operator", "deblur:sigma=1.6", "--max-iter", "5",
        "--prior", "identity", "--prior", "tv:weight=0.02",
    )  # fmt: skip
    assert code == 0 and err == ""
    header, *rows = out.splitlines()
    assert header.split() == [
        "prior", "status", "iterations", "seconds", "psnr_init", "psnr", "ssim", "consistency"
    ]  # fmt: skip
    assert [r.split()[0] for r in rows] == ["identity", "tv:weight=0.02"]
    psnr_init = {float(r.split()[4]) for r in rows}
    assert len(psnr_init) == 1  # the same measurement for every prior


def test_compare_json(capsys, images):
    code, out, _ = _run(
        capsys, "compare", images["gray"], "--operator", "deblur:sigma=1.6", "--max-iter", "5",
        "--prior", "identity", "--prior", "tv:weight=0.02", "--json",
    )  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["problem"]["operator"] == "deblur:sigma=1.6"
    runs = result["runs"]
    assert [r["prior"] for r in runs] == ["identity", "tv:weight=0.02"]
    assert all(JSON_KEYS | {"residuals"} <= set(r) for r in runs)
    assert runs[0]["psnr_init"] == runs[1]["psnr_init"]
    assert runs[1]["psnr"] > runs[0]["psnr"]  # TV beats no prior on noisy deblurring


def test_compare_bad_prior_exits_2(capsys, images):
    code, _, err = _run(capsys, "compare", images["gray"], "--prior", "tv", "--prior", "nope")
    assert code == 2 and "unknown prior 'nope'" in err


# -- listings, help, launcher ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["priors", "operators", "solvers", "accelerators"])
def test_listings(capsys, kind):
    names = getattr(registry, kind).names()
    code, out, _ = _run(capsys, kind)
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert listed == names
    code, out, _ = _run(capsys, kind, "--json")
    data = json.loads(out)
    assert code == 0 and [e["name"] for e in data[kind]] == names
    assert all({"summary", "options", "source"} <= set(e) for e in data[kind])
    assert data["plugin_errors"] == {}


def test_operator_listing_shows_options(capsys):
    data = json.loads(_run(capsys, "operators", "--json")[1])
    options = {e["name"]: e["options"] for e in data["operators"]}
    assert {"rate", "pattern"} <= set(options["mri"]) and "p" in options["inpaint"]
    assert {"scale", "sigma"} <= set(options["sr"])


def test_listings_show_each_options_schema(capsys):
    """Name, type, default, range or choices and help: in the text and in --json."""
    lines = [" ".join(line.split()) for line in _run(capsys, "operators")[1].splitlines()]
    assert "rate float 0.1 (0, 1] fraction of k-space sampled" in lines
    assert "pattern str radial radial | cartesian k-space sampling pattern" in lines
    data = json.loads(_run(capsys, "operators", "--json")[1])
    mri = next(e for e in data["operators"] if e["name"] == "mri")
    assert mri["schema"][0] == {
        "name": "rate", "type": "float", "default": 0.1, "range": "(0, 1]", "choices": [],
        "help": "fraction of k-space sampled", "optional": False, "derived": False,
    }  # fmt: skip
    assert mri["schema"][1]["choices"] == ["radial", "cartesian"]
    priors = [" ".join(line.split()) for line in _run(capsys, "priors")[1].splitlines()]
    weight = next(line for line in priors if line.startswith("weight "))  # TV's
    assert weight.startswith("weight float auto [0, ∞)") and weight.endswith(
        "auto: derived from the problem, else 0.05"
    )
    accel = json.loads(_run(capsys, "accelerators", "--json")[1])["accelerators"]
    anderson = {o["name"]: o for o in next(e for e in accel if e["name"] == "anderson")["schema"]}
    assert (anderson["m"]["type"], anderson["m"]["range"]) == ("int", "[1, ∞)")


def test_train_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: deq-explorer train" in out and "--mode" in out


def test_reconstruct_help_lists_registry_names(capsys):
    with pytest.raises(SystemExit):
        cli.main(["reconstruct", "--help"])
    out = capsys.readouterr().out
    for name in registry.operators.names() + registry.solvers.names():
        assert name in out
    assert "sample:NAME" in out and "--solve-operator" in out


def test_module_help_in_a_subprocess():
    done = subprocess.run(
        [sys.executable, "-m", "deq_explorer.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for command in ("reconstruct", "compare", "train", "priors", "operators"):
        assert command in done.stdout
    assert "deq-explorer reconstruct sample:brain" in done.stdout  # the examples
    listed = done.stdout.split("registered:")[1]
    for kind in ("operators", "priors", "solvers", "accelerators"):
        # entries registered by earlier tests in this process do not exist in the subprocess
        for entry in getattr(registry, kind).entries():
            if entry.source == "builtin" and "path" not in entry.metadata:
                assert entry.name in listed, (kind, entry.name)
    assert "dncnn-awgn" in listed  # a shipped checkpoint prior
    assert "brain" in listed and "phantom" in listed


@pytest.mark.parametrize("missing", ["napari", "deq_explorer._napari"])
def test_launch_without_napari_gives_the_install_hint(capsys, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    code, out, err = _run(capsys)
    assert code == 2 and out == ""
    assert 'pip install "deq-explorer[napari]"' in err and "Traceback" not in err


_WITHOUT_GUI = """
import importlib.abc, importlib.machinery, sys

class Absent(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # a base install: every package of the [napari] extra fails to import
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"napari", "qtpy", "magicgui", "PyQt6", "psygnal", "npe2"}:
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, Absent())
from deq_explorer.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_a_base_install_runs_the_cli_with_the_shipped_priors():
    """No GUI packages: the CLI still solves with a shipped prior; the bare command says why not."""
    run = [sys.executable, "-c", _WITHOUT_GUI]
    args = ["reconstruct", "sample:camera", "--operator", "denoise", "--noise", "0.05",
            "--prior", "dncnn-awgn", "--max-iter", "3", "--json"]  # fmt: skip
    solved = subprocess.run([*run, *args], capture_output=True, text=True, timeout=300)
    assert solved.returncode == 0, solved.stderr[-2000:]
    result = json.loads(solved.stdout)
    assert result["psnr"] > result["psnr_init"]
    bare = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and "Traceback" not in bare.stderr
    assert 'pip install "deq-explorer[napari]"' in bare.stderr


def test_a_large_solve_is_estimated_and_warned_about(capsys, monkeypatch, images):
    """Above LARGE_PIXELS the CLI estimates first: warns of a long solve, refuses a huge one."""
    monkeypatch.setattr(api, "LARGE_PIXELS", 100)  # the 48×48 test image counts as large
    cost = api.Cost(seconds_per_iteration=30.0, bytes=2**30, available=2**34)
    monkeypatch.setattr(api, "estimate_cost", lambda problem, prior: cost)
    code, _, err = _run(capsys, "reconstruct", images["gray"], "--operator", "denoise", *FAST)
    assert code == 0
    assert "warning: 48x48 pixels with 'tv:weight=0.02'" in err and "30.0 s per iteration" in err
    assert "up to 2 min for 5 iterations" in err
    cost = api.Cost(seconds_per_iteration=0.1, bytes=2**36, available=2**34)
    code, _, err = _run(capsys, "reconstruct", images["gray"], "--operator", "denoise", *FAST)
    assert code == 2 and "needs about 64.0 GiB but 16.0 GiB are free" in err
    assert "crop or downscale" in err


def test_estimate_cost_measures_the_prior(images):
    problem = api.simulate(images["gray"], "denoise", noise=0.05)
    cost = api.estimate_cost(problem, "dncnn-awgn", tile=16)
    assert 0 < cost.seconds_per_iteration < 60
    # the network's widest activations dominate: three of them a pixel, and more
    net = api.build_prior("dncnn-awgn").module
    width = max(m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert cost.bytes >= 3 * width * 48 * 48 * 4 and cost.fits
    tv = api.estimate_cost(problem, "tv", tile=16)
    assert tv.bytes < cost.bytes


def test_a_diverged_solve_exits_3_with_its_status(capsys, images):
    code, out, err = _run(capsys, "reconstruct", images["gray"], "--operator", "deblur",
                          "--solver", "red-sd:gamma=100", "--prior", "identity", "--accel",
                          "none", "--max-iter", "50", "--json")  # fmt: skip
    assert code == 3, err
    assert json.loads(out)["status"] == "diverged" and "diverged" in err


def test_an_existing_checkpoint_path_with_a_colon_is_a_path(tmp_path, images):
    from deq_explorer.priors.checkpoint import save_checkpoint
    from deq_explorer.priors.nets import build_net

    net = build_net("dncnn", {"depth": 3, "width": 8})
    path = save_checkpoint(tmp_path / "ckpt_12:30.safetensors", net, {"sigma": 0.05})
    prior = api.build_prior(str(path))
    assert prior.sigma == 0.05
    problem = api.simulate(images["gray"], "denoise", noise=0.05)
    assert api.reconstruct(problem, prior=str(path), max_iter=2).iterations == 2


def test_mcnet_with_a_backbone_from_the_cli_matches_the_api(capsys, images):
    argv = ["reconstruct", images["gray"], "--operator", "sr-bicubic:scale=2", "--noise", "0",
            "--prior", "mcnet-sr2", "--backbone", "srcnn-x2", "--accel", "none", "--max-iter",
            "5", "--json"]  # fmt: skip
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    result = json.loads(out)
    assert result["solver"].startswith("mcnet-admm:") and result["start"] == "backbone"
    problem = api.simulate(images["gray"], "sr-bicubic:scale=2", noise=0.0, seed=0)
    w = api.backbone(problem, "srcnn-x2")
    ours = api.reconstruct(problem, prior="mcnet-sr2", w=w, accel="none", max_iter=5)
    from deq_explorer.metrics import psnr

    assert result["psnr"] == pytest.approx(psnr(ours.x, problem.x_true), abs=1e-4)


@pytest.mark.parametrize("start", ["zero", "adjoint", "init"])
def test_the_start_image_is_a_flag(capsys, images, start):
    code, out, _ = _run(capsys, "reconstruct", images["gray"], "--operator", "mri:rate=0.3",
                        "--init", start, "--json", *FAST)  # fmt: skip
    assert code == 0 and json.loads(out)["start"] == start
    problem = api.simulate(images["gray"], "mri:rate=0.3", noise=0.01, seed=0)
    w = api.start_image(problem, start)
    if start == "zero":
        assert float(w.abs().max()) == 0.0
    else:  # for MRI, init(y) is the zero-filled Aᵀy
        torch.testing.assert_close(w, problem.x_init())


def test_start_flag_mistakes_exit_2(capsys, images):
    base = ["reconstruct", images["gray"], "--operator", "sr-bicubic:scale=2", *FAST]
    code, _, err = _run(capsys, *base, "--init", "backbone")
    assert code == 2 and "needs a backbone" in err
    code, _, err = _run(capsys, *base, "--init", "zero", "--backbone", "srcnn-x2")
    assert code == 2 and "only used as the start" in err
    code, _, err = _run(capsys, *base, "--backbone", "srcnn-x9")
    assert code == 2 and "srcnn-x9" in err


def test_compare_out_saves_every_run(capsys, images, tmp_path):
    target = tmp_path / "cmp.npz"
    code, out, _ = _run(capsys, "compare", images["gray"], "--operator", "deblur:sigma=1.0",
                        "--prior", "tv", "--prior", "identity", "--max-iter", "4", "--json",
                        "--out", str(target))  # fmt: skip
    assert code == 0
    printed = json.loads(out)
    with np.load(target, allow_pickle=False) as saved:
        assert saved["x"].shape == (2, 1, 48, 48) and saved["reference"].shape == (1, 48, 48)
        config = json.loads(str(saved["config"]))
        assert [r["prior"] for r in config["runs"]] == [r["prior"] for r in printed["runs"]]
        for i, run in enumerate(printed["runs"]):
            np.testing.assert_allclose(saved[f"history_{i}"]["residual"], run["residuals"])
    assert _run(capsys, "compare", images["gray"], "--prior", "tv", "--out", str(target),
                "--no-clobber")[0] == 2  # fmt: skip


def test_progress_bar_on_a_terminal_ends_at_100_percent(capsys, images, monkeypatch):
    monkeypatch.setattr(cli, "PROGRESS_DELAY_S", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["--operator", "denoise", "--noise", "0.05", "--max-iter", "50", "--prior", "tv"]
    code, out, err = _run(capsys, "reconstruct", images["gray"], *argv)
    assert code == 0
    bar = err.replace("\r", "\n").splitlines()
    assert any("100%" in line and "50/50" in line for line in bar)  # converged early: full bar
    assert "converged" in out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = _run(capsys, "reconstruct", images["gray"], *FAST, "--quiet")
    assert code == 0 and "it/s" not in err and "%" not in err


def test_the_committed_sample_measurements_reconstruct(capsys):
    from deq_explorer.sample_data import FOLDER, sample_path

    kspace = str(sample_path("phantom_kspace_radial30.npz"))
    code, out, _ = _run(capsys, "reconstruct", "--measurement", kspace, "--operator",
                        "mri:rate=0.3", "--noise", "0.005", "--prior", "tv", "--reference",
                        "sample:phantom", "--max-iter", "40", "--json")  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["psnr"] > result["psnr_init"] + 5
    blurred = str(sample_path("astronaut_blur_sigma2.npz"))
    code, out, _ = _run(capsys, "reconstruct", "--measurement", blurred, "--operator",
                        "deblur:sigma=2.0", "--noise", "0.01", "--prior", "tv", "--max-iter",
                        "5", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["psnr"] is None  # no reference: no PSNR
    readme = (FOLDER / "README.md").read_text()
    assert all(p.name in readme for p in FOLDER.iterdir() if p.suffix in (".npz", ".gz"))
    with pytest.raises(FileNotFoundError, match="sample_data holds"):
        sample_path("nope.npz")


def test_sigma_continuation_from_the_cli(capsys, images):
    argv = ["--operator", "inpaint:p=0.5", "--noise", "0.01", "--prior", "dncnn-awgn",
            "--solver", "pnp-admm", "--max-iter", "6", "--tol", "0", "--json"]  # fmt: skip
    code, out, _ = _run(capsys, "reconstruct", images["gray"], *argv, "--continuation", "0.2:3")
    result = json.loads(out)
    assert code == 0 and result["continuation"] == {"start": 0.2, "stages": 3}
    assert result["iterations"] == 6
    code, _, err = _run(capsys, "reconstruct", images["gray"], *argv, "--continuation", "big")
    assert code == 2 and "--continuation takes START:STAGES" in err
    code, _, err = _run(capsys, "reconstruct", images["gray"], *argv, "--continuation", "0.2:1")
    assert code == 2 and "stages must be an integer ≥ 2" in err
