"""``deq-explorer export``: a BioImage Model Zoo package that passes bioimageio.core's test,
TorchScript and ONNX files that reproduce the prior's denoiser, and the CLI's refusals."""

import ast
import os
import sys
import zipfile

import numpy as np
import pytest
import torch

from deq_explorer import api, cli
from deq_explorer.export import ExportError, export_prior

SLOW = pytest.mark.slow
# torch 2.13 deprecates torch.jit; TorchScript is still a BioImage Model Zoo weights format
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _image(shape=(2, 1, 40, 56)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    pytest.importorskip("bioimageio.core", reason='needs pip install "deq-explorer[export]"')
    return export_prior("dncnn-awgn", tmp_path_factory.mktemp("bio") / "dncnn-awgn.zip", size=32)


def test_bioimageio_package_passes_bioimageio_core(package):
    from bioimageio.core import test_model

    summary = test_model(package)
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    tested = {d.loc[1] for d in summary.details if len(d.loc) > 1 and d.loc[0] == "weights"}
    assert tested == {"pytorch_state_dict", "torchscript"}


def test_bioimageio_package_contents(package):
    from bioimageio.spec import load_model_description

    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        readme = z.read("README.md").decode()
        arch = z.read("dncnn.py").decode()
    assert {"dncnn-awgn.toml", "dncnn-awgn.metadata.json", "weights.pt"} <= names
    assert "# Model card: `dncnn-awgn`" in readme and "What each export format keeps" in readme
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else n.names[0].name).split(".")[0]
        for n in ast.walk(ast.parse(arch))
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    assert imported <= {"torch", *sys.stdlib_module_names}, imported  # self-contained
    model = load_model_description(package, perform_io_checks=False)
    assert [t.id for t in model.inputs] == ["image", "sigma"]
    assert model.license == "BSD-3-Clause"
    assert model.config.model_extra["deq_explorer"]["sigma"] == pytest.approx(0.03)


@pytest.mark.parametrize("name", ["dncnn-awgn", pytest.param("sn-dncnn-awgn", marks=SLOW)])
def test_torchscript_matches_the_prior(tmp_path, name):
    prior = api.build_prior(name)
    path = export_prior(name, tmp_path / "d.pt", "torchscript", sigma=0.05)
    x = _image()  # another size and batch than the traced example
    with torch.no_grad():
        got = torch.jit.load(path)(x)
        want = prior.denoise(x, 0.05)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_onnx_matches_the_prior(tmp_path):
    pytest.importorskip("onnxscript", reason='needs pip install "deq-explorer[export]"')
    ort = pytest.importorskip("onnxruntime")
    path = export_prior("dncnn-awgn", tmp_path / "d.onnx", "onnx")
    x = _image((1, 1, 48, 32))
    got = ort.InferenceSession(str(path)).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        want = api.build_prior("dncnn-awgn").denoise(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cli_writes_torchscript(capsys, tmp_path):
    out = tmp_path / "d.pt"
    code, stdout, err = _run(capsys, "export", "dncnn-awgn", "--format", "torchscript",
                             "--sigma", "0.02", "--out", str(out))  # fmt: skip
    assert code == 0 and err == "" and str(out) in stdout
    x = _image((1, 1, 24, 24))
    with torch.no_grad():
        want = api.build_prior("dncnn-awgn").denoise(x, 0.02)
        torch.testing.assert_close(torch.jit.load(out)(x), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope", "--out", "{tmp}/a.zip"], "unknown prior 'nope'"),
        (["tv", "--out", "{tmp}/a.zip"], "has no network to export"),
        (["deq-mri-radial10", "--solver", "pnp-pgm", "--out", "{tmp}/a.zip"],
         "solve settings do not travel"),
        (["dncnn-awgn", "--tol", "1e-3", "--out", "{tmp}/a.zip"], "--tol"),
        (["dncnn-awgn", "--out", "{tmp}/a.pt"], "bioimageio format writes a .zip"),
        (["dncnn-awgn", "--out", "{tmp}/missing/a.zip"], "does not exist"),
        (["dncnn-awgn", "--format", "onnx", "--out", "{tmp}"], "is a folder"),
        (["dncnn-awgn", "--format", "torchscript", "--sigma", "-1", "--out", "{tmp}/a.pt"],
         "sigma must be"),
    ],
)  # fmt: skip
def test_cli_refuses(capsys, tmp_path, argv, message):
    code, stdout, err = _run(capsys, "export", *(a.format(tmp=tmp_path) for a in argv))
    assert code == 2 and stdout == ""
    assert err.startswith("deq-explorer: error: ") and message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_cli_refuses_an_unwritable_folder(capsys, tmp_path):
    tmp_path.chmod(0o500)
    try:
        code, _, err = _run(capsys, "export", "dncnn-awgn", "--out", str(tmp_path / "a.zip"))
    finally:
        tmp_path.chmod(0o700)
    assert code == 2 and "not writable" in err


def test_missing_extra_names_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)  # import fails as if absent
    monkeypatch.setitem(sys.modules, "bioimageio.spec.model", None)
    code, _, err = _run(capsys, "export", "dncnn-awgn", "--out", str(tmp_path / "a.zip"))
    assert code == 2 and 'pip install "deq-explorer[export]"' in err
    assert list(tmp_path.iterdir()) == []


@SLOW
def test_onnx_refuses_what_does_not_export(tmp_path):
    pytest.importorskip("onnxscript")
    with pytest.raises(ExportError, match=r"does not export to ONNX cleanly.*torchscript"):
        export_prior("sn-dncnn-awgn", tmp_path / "sn.onnx", "onnx")
    assert list(tmp_path.iterdir()) == []
