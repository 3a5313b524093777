"""Batched conjugate gradients."""

import pytest
import torch
from deq_explorer_ct.cg import CG, conjugate_gradient


def _spd(n, cond, seed):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.logspace(0, cond, n, dtype=torch.float64)) @ q.T


def test_solves_each_item_to_tolerance():
    mats = torch.stack([_spd(20, 1, 0), _spd(20, 3, 1)])  # very different conditioning

    def M(v):
        return torch.einsum("bij,bjk->bik", mats, v)

    b = torch.randn(2, 20, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x = conjugate_gradient(M, b, torch.zeros_like(b), CG(tol=1e-10, max_iter=200))
    assert torch.allclose(x, torch.linalg.solve(mats, b), atol=1e-8)
    rel = (M(x) - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)
    assert torch.all(rel <= 1e-10)


def test_cap_and_warm_start():
    A = _spd(30, 4, 3)[None]

    def M(v):
        return A @ v

    b = torch.randn(1, 30, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    exact = torch.linalg.solve(A, b)
    few = conjugate_gradient(M, b, torch.zeros_like(b), CG(tol=1e-12, max_iter=3))
    assert (few - exact).norm() > 1e-3 * exact.norm()  # the cap really stops it
    warm = conjugate_gradient(M, b, exact, CG(tol=1e-8, max_iter=1))
    assert torch.allclose(warm, exact)  # a converged warm start costs nothing


def test_bad_rule():
    with pytest.raises(ValueError, match="tol > 0"):
        CG(tol=0.0)
    with pytest.raises(ValueError, match="max_iter >= 1"):
        CG(max_iter=0)
