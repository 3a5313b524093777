"""The CUDA check script: its checks run on the CPU here and on CUDA where there is one."""

from __future__ import annotations

import pytest
import torch

from deq_explorer import gpu_check


def test_the_checks_run_and_pass_on_the_cpu(capsys) -> None:
    checks = gpu_check.check_adjoints(torch.device("cpu"))
    assert len(checks) == len(gpu_check.OPERATORS) and all(c.ok for c in checks)
    (training,) = gpu_check.check_training(torch.device("cpu"), steps=2, crop=16)
    assert training.ok, training.detail
    assert gpu_check.main(["--device", "cuda"]) == (0 if torch.cuda.is_available() else 1)


def test_a_failing_check_fails_the_script(monkeypatch, capsys) -> None:
    bad = gpu_check.Check("adjoint x", "cpu", False, "rel. error 1e-3", 0.0)
    monkeypatch.setattr(gpu_check, "check_adjoints", lambda device: [bad])
    monkeypatch.setattr(gpu_check, "check_solves", lambda device: [])
    monkeypatch.setattr(gpu_check, "check_training", lambda device: [])
    assert gpu_check.main(["--device", "cpu"]) == 1
    assert "FAIL adjoint x" in capsys.readouterr().out


@pytest.mark.cuda
def test_cuda_matches_the_cpu() -> None:
    device = torch.device("cuda")
    checks = [*gpu_check.check_adjoints(device), *gpu_check.check_solves(device, side=64)]
    checks += gpu_check.check_training(device, steps=2)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
