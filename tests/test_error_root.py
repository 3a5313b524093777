"""One error root, one set of validators, one device resolver."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deq_explorer import checks, cli, errors
from deq_explorer.errors import DEQExplorerError, DeviceError, SolverError
from deq_explorer.training import distributed

PACKAGE = Path(errors.__file__).parent

#: each error class and the module it is raised from (and importable from, as before)
HOMES = {
    "CheckpointError": "deq_explorer.priors.checkpoint",
    "ConfigError": "deq_explorer.training.config",
    "ImageError": "deq_explorer.images",
    "InputError": "deq_explorer.cli",
    "LayerError": "deq_explorer._napari._convert",
    "OperatorError": "deq_explorer.operators.base",
    "ProblemError": "deq_explorer.api",
    "RequestError": "deq_explorer.api",
    "SpecError": "deq_explorer.registry",
    "VolumeError": "deq_explorer.volumes",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_a_deq_explorer_error(name):
    cls = getattr(errors, name)
    assert issubclass(cls, DEQExplorerError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("name", sorted(HOMES))
def test_errors_stay_importable_from_their_modules(name):
    if HOMES[name].startswith("deq_explorer._napari"):
        pytest.importorskip("napari")
    assert getattr(importlib.import_module(HOMES[name]), name) is getattr(errors, name)


def test_errors_module_is_the_bottom_layer():
    assert _imports(PACKAGE / "errors.py") == {"__future__"}


def test_noise_imports_alone_without_a_cycle():
    assert not any(m.startswith("deq_explorer.operators") for m in _imports(
        PACKAGE / "operators" / "noise.py"
    ))  # fmt: skip
    code = "import deq_explorer.operators.noise as n; print(n.OperatorError.__module__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "deq_explorer.errors", result.stderr


@pytest.mark.parametrize(
    ("check", "bad", "message"),
    [
        (checks.positive, [0, -1.0, float("nan"), float("inf"), True, "1"], "must be a positive"),
        (checks.non_negative, [-1e-9, float("nan"), float("inf"), False], "must be ≥ 0"),
        (checks.integer, [0, 1.0, True, "2"], "must be an integer ≥ 1"),
    ],
)
def test_validators(check, bad, message):
    assert check(3, "x") == 3
    for value in bad:
        with pytest.raises(SolverError, match=f"^gamma {message}"):
            check(value, "gamma", error=SolverError)


def test_integer_minimum_and_numpy_ints():
    np = pytest.importorskip("numpy")
    assert checks.integer(np.int64(4), "depth", 2) == 4
    assert type(checks.integer(np.int64(4), "depth", 2)) is int
    with pytest.raises(DEQExplorerError, match="depth must be an integer ≥ 2; got 1"):
        checks.integer(1, "depth", 2)


def test_one_device_resolver(monkeypatch):
    assert checks.resolve_device(None) == checks.resolve_device("auto")
    assert checks.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        checks.resolve_device("tpu")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        distributed.resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for resolve in (checks.resolve_device, distributed.resolve_device):
        assert resolve("auto") == torch.device("cpu")
        with pytest.raises(DeviceError, match="CUDA was requested"):
            resolve("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert checks.resolve_device("auto") == torch.device("cuda")
    assert distributed.resolve_device("auto", local_rank=1) == torch.device("cuda:1")
    assert distributed.resolve_device("cuda", local_rank=1) == torch.device("cuda:1")
    assert distributed.resolve_device("cuda:0", local_rank=1) == torch.device("cuda:0")


def test_cli_classifies_errors_by_type(monkeypatch, capsys):
    def raising(exc):
        def command(*_):
            raise exc

        return command

    monkeypatch.setattr(cli, "_list", raising(DeviceError("no such device")))
    assert cli.main(["priors"]) == 2
    monkeypatch.setattr(cli, "_list", raising(torch.cuda.OutOfMemoryError("CUDA out of memory")))
    assert cli.main(["priors"]) == 2
    assert "out of memory" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_list", raising(RuntimeError("CUDA error: an internal bug")))
    with pytest.raises(RuntimeError, match="internal bug"):
        cli.main(["priors"])


def test_no_error_class_lives_outside_the_root_module():
    package = Path(errors.__file__).parent
    stray = [
        f"{path.relative_to(package)}:{node.name}"
        for path in package.rglob("*.py")
        if path.name != "errors.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and node.name.endswith("Error")
    ]
    assert stray == []
