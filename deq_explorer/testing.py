"""The contracts every operator, prior and solver meets, for the core's tests and packs' tests.

>>> from deq_explorer.testing import check_operator, check_prior, check_solver
>>> check_operator("sr:scale=2")  # raises AssertionError naming the broken property

Each check builds its entry from a spec (at the operator's declared example shape,
:class:`~deq_explorer.operators.needs.ImageNeeds`) and asserts; it returns nothing.
A pack's tests get the fixture ``installed_pack`` with ``pytest_plugins =
["deq_explorer.testing"]`` in their ``conftest.py``: ``installed_pack(register)``
runs a pack's registration hook and the end of the test rolls it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, OperatorError
from deq_explorer.operators.needs import image_needs
from deq_explorer.priors.base import Prior
from deq_explorer.registry import load_plugins, operators, priors, registering, solvers

__all__ = ["check_operator", "check_prior", "check_solver", "installed"]

#: relative tolerance of ``<Ax, y> = <x, Aᵀy>`` per working precision
ADJOINT_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = (torch.float32, torch.float64)


def _inner(a: Tensor, b: Tensor) -> float:
    """``Re <a, b>``, the inner product of ``C^m`` seen as a real space."""
    return float((a.conj() * b).real.sum()) if a.is_complex() else float((a * b).sum())


def _rand(shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator, device) -> Tensor:
    return torch.randn(shape, dtype=dtype, generator=gen).to(device)


def _rand_y(op: LinearOperator, batch: int, gen: torch.Generator, like: Tensor) -> Tensor:
    """A random measurement, complex where the operator's measurements are."""
    y = _rand((batch, *op.y_shape), like.dtype, gen, like.device)
    if op.A(like[:1]).is_complex():
        y = torch.complex(y, _rand(y.shape, like.dtype, gen, like.device))
    return y


def check_operator(
    spec: str,
    shape: tuple[int, int, int] | None = None,
    *,
    device: str | torch.device = "cpu",
    prox_tol: float = 1e-10,
    exact_pinv: bool = True,
) -> None:
    """Assert the :class:`LinearOperator` contract for the operator ``spec``.

    Exact adjoint in both precisions, shapes, dtypes and devices of every method
    (the operator follows its input), ``grad_data`` against autograd, prox
    optimality and per-item ``γ``, projection feasibility and optimality (KKT),
    determinism, noise only on measured entries, ``lipschitz`` against power
    iteration, a fair ``init``, refusal of wrong shapes and of ``eps < 0``.

    Parameters
    ----------
    spec : str
        The operator, e.g. ``"sr:scale=3"``.
    shape : (C, H, W), optional
        Image shape (default: the entry's declared example).
    device : str or torch.device
        Where the images live.
    prox_tol : float
        Relative accuracy of ``prox_data`` in float64 (loosen it for iterative solvers).
    exact_pinv : bool
        Whether ``project(x, y, 0)`` reaches consistent data exactly (False for
        operators whose ``γ = ∞`` prox is an ill-conditioned iterative solve).
    """
    shape = tuple(shape or image_needs(spec).example)
    gen = torch.Generator().manual_seed(0)
    for dtype in DTYPES:
        op = operators.build(spec, shape=shape, device=device, dtype=dtype)
        x = _rand((3, *shape), dtype, gen, device)
        y = _rand_y(op, 3, gen, x)
        ax, aty = op.A(x), op.A_adjoint(y)
        err = abs(_inner(ax, y) - _inner(x, aty)) / float(x.norm() * y.norm())
        assert err <= ADJOINT_TOL[dtype], f"{spec}: <Ax, y> != <x, Aᵀy> in {dtype} ({err:.1e})"
        assert tuple(ax.shape) == (3, *op.y_shape), f"{spec}: A(x) has shape {tuple(ax.shape)}"
        assert ax.real.dtype == dtype and ax.device == x.device, f"{spec}: A(x) left {dtype}"
        outs = {"A_adjoint": aty, "init": op.init(y), "prox_data": op.prox_data(x, y, 0.5)}
        outs["project"] = op.project(x, y)
        for what, out in outs.items():
            assert out.shape == x.shape, f"{spec}: {what} has shape {tuple(out.shape)}"
            assert out.dtype == dtype and out.device == x.device, f"{spec}: {what} left {dtype}"
        _check_projection(op, spec, gen, x, exact_pinv)
    other = x.to(torch.float32 if op.dtype == torch.float64 else torch.float64)
    out = op.A_adjoint(op.A(other))
    assert out.dtype == other.dtype, f"{spec}: does not follow its input's precision"
    twin = operators.build(spec, shape=shape, device=device, dtype=op.dtype)
    assert torch.equal(twin.A(x), op.A(x)), f"{spec}: two builds of one spec differ"
    assert torch.equal(op.init(y), op.init(y)), f"{spec}: init is not deterministic"
    _check_data_terms(op, spec, gen, x, prox_tol)
    _check_measurement(op, spec, gen, x)


def _check_data_terms(
    op: LinearOperator, spec: str, gen: torch.Generator, x: Tensor, prox_tol: float
) -> None:
    """``grad_data`` against autograd; the prox's optimality, per-item ``γ`` and ``γ = 0``."""
    z, y = x[:2], _rand_y(op, 2, gen, x)
    v = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(0.5 * (op.A(v) - y).abs().square().sum(), v)
    assert torch.allclose(op.grad_data(z, y), g, atol=1e-10 * float(g.norm())), (
        f"{spec}: grad_data differs from the gradient of ½‖Ax − y‖²"
    )
    for gamma in (1e-3, 0.7, 50.0):
        p = op.prox_data(z, y, gamma).requires_grad_(True)
        f = 0.5 * (op.A(p) - y).abs().square().sum() + (p - z).square().sum() / (2 * gamma)
        (g,) = torch.autograd.grad(f, p)
        scale = float(z.norm() / gamma + op.A_adjoint(y).norm())
        assert float(g.norm()) <= prox_tol * scale, f"{spec}: prox_data not optimal at γ={gamma}"
    both = op.prox_data(z, y, torch.tensor([0.3, 4.0], dtype=z.dtype, device=z.device))
    atol = prox_tol * float(z.norm())
    for i, gamma in enumerate((0.3, 4.0)):
        alone = op.prox_data(z[i : i + 1], y[i : i + 1], gamma)
        assert torch.allclose(both[i : i + 1], alone, atol=atol), f"{spec}: per-item γ mixes items"
    assert torch.allclose(op.prox_data(z, y, 0.0), z), f"{spec}: prox_data at γ = 0 moves z"


def _check_projection(
    op: LinearOperator, spec: str, gen: torch.Generator, x: Tensor, exact_pinv: bool
) -> None:
    """``project`` onto ``‖Au − y‖ ≤ ε``: feasible, on the boundary, nearest (KKT)."""
    dtype = x.dtype
    x0 = _rand(x[:2].shape, dtype, gen, x.device).abs()
    if exact_pinv and dtype == torch.float64:
        y = op.A(x0)
        p = op.project(x[:2], y, 0.0)
        assert (op.norm(op.A(p) - y) <= 1e-8 * op.norm(y)).all(), f"{spec}: ε = 0 misses the data"
        assert torch.allclose(op.project(x0, y, 0.0), x0, atol=1e-8), f"{spec}: moves feasible x"
        assert torch.allclose(op.project(p, y, 0.0), p, atol=1e-8), f"{spec}: not idempotent"
    y = op.measure(x0, 0.05, gen)
    u = op.init(y) + 0.3 * _rand(x0.shape, dtype, gen, x.device)
    floor = op.norm(op.A(op.project(u, y, 0.0)) - y)
    eps = torch.maximum(1.5 * floor, 0.3 * op.norm(op.A(u) - y)).double()
    p = op.project(u, y, eps)
    res = op.norm(op.A(p) - y).double()
    assert (res <= eps * (1 + 1e-4)).all(), f"{spec}: project(x, y, ε) is not feasible in {dtype}"
    if dtype == torch.float64:
        assert (res >= eps * (1 - 1e-3)).all(), f"{spec}: project stops inside the ball"
        g = op.A_adjoint(op.A(p) - y).flatten(1)
        d = (u - p).flatten(1)
        cos = (d * g).sum(1) / (d.norm(dim=1) * g.norm(dim=1))
        assert (cos > 1 - 1e-6).all(), f"{spec}: x − project(x) is not along Aᵀ(Ap − y)"
    q = op.project(u + 0.2 * _rand(u.shape, dtype, gen, x.device), y, eps)
    closer = (u - p).flatten(1).norm(dim=1) <= (u - q).flatten(1).norm(dim=1) * (1 + 1e-5)
    assert closer.all(), f"{spec}: another feasible point is nearer than project(x)"
    assert torch.allclose(op.project(p, y, eps * 1.01), p, atol=1e-6), f"{spec}: moves inner x"
    try:
        op.project(p, y, -1.0)
    except OperatorError as exc:
        assert "eps" in str(exc), f"{spec}: the error for ε < 0 does not name eps"
    else:
        raise AssertionError(f"{spec}: project accepts ε < 0")


def _check_measurement(op: LinearOperator, spec: str, gen: torch.Generator, x: Tensor) -> None:
    """Noise on measured entries only; ``lipschitz``; a fair ``init``; wrong shapes refused."""
    x = x[:1].abs()
    assert torch.equal(op.measure(x, 0.0), op.A(x)), f"{spec}: measure(x, 0) != A(x)"
    diff = (op.measure(x, 0.1, gen) - op.A(x)).abs()
    mask = op.support()
    if mask is not None:
        assert not bool(diff[..., ~mask].any()), f"{spec}: noise off the support"
        diff = diff[..., mask]
    assert float(diff.square().mean().sqrt()) > 0.05, f"{spec}: measure adds no noise"
    power = LinearOperator.lipschitz(op)
    assert power <= op.lipschitz() * (1 + 1e-9), f"{spec}: lipschitz() is below ‖A‖²"
    assert math.isclose(power, op.lipschitz(), rel_tol=3e-2), f"{spec}: lipschitz() is not ‖A‖²"
    c, h, w = op.x_shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    smooth = 0.5 + 0.3 * torch.cos(2 * math.pi * yy / h) * torch.sin(2 * math.pi * xx / w)
    smooth = smooth.to(x).expand(1, c, h, w)
    start = op.init(op.A(smooth))
    assert float((start - smooth).norm()) < 0.8 * float(smooth.norm()), f"{spec}: init(Ax) is poor"
    try:
        op.A(x.new_zeros(1, c, h + 1, w))
    except OperatorError as exc:
        assert "shape" in str(exc), f"{spec}: the error for a wrong shape does not say 'shape'"
    else:
        raise AssertionError(f"{spec}: A accepts an image of the wrong shape")


def _prior(spec: str | Prior, device: str | torch.device) -> Prior:
    return (priors.build(spec) if isinstance(spec, str) else spec).to(device)


def check_prior(
    spec: str | Prior,
    shape: tuple[int, int, int, int] | None = None,
    *,
    device: str | torch.device = "cpu",
) -> None:
    """Assert the :class:`Prior` contract for ``spec`` (a registry spec or a prior).

    ``denoise`` keeps shape, dtype and device, is finite and deterministic, leaves
    its input and the grad mode alone, builds no graph under ``torch.no_grad``,
    treats batch items independently; ``red_grad(x) = x − denoise(x)``.

    Parameters
    ----------
    spec : str or Prior
        The prior.
    shape : (B, C, H, W), optional
        Default: two odd-sized images with the network's channels (1 without one).
    device : str or torch.device
        Where the prior runs.
    """
    prior = _prior(spec, device)
    name = spec if isinstance(spec, str) else prior.name
    shape = shape or (2, getattr(prior.module, "channels", 1), 21, 19)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen).to(device)
    before = x.clone()
    prior.denoise(x)  # with grad on, as in training
    assert torch.is_grad_enabled(), f"{name}: denoise leaves grad mode switched off"
    with torch.no_grad():
        d = prior.denoise(x)
        again = prior.denoise(x)
        alone = [prior.denoise(x[i : i + 1]) for i in range(len(x))]
        red = prior.red_grad(x)
    assert d.shape == x.shape, f"{name}: denoise gives shape {tuple(d.shape)} for {shape}"
    assert d.dtype == x.dtype and d.device == x.device, f"{name}: denoise left {x.dtype}"
    assert bool(torch.isfinite(d).all()), f"{name}: denoise gives NaN or Inf"
    assert not d.requires_grad, f"{name}: denoise builds a graph under torch.no_grad"
    assert torch.equal(x, before), f"{name}: denoise modifies its input"
    assert torch.allclose(again, d, atol=1e-6), f"{name}: denoise is not deterministic"
    for i, one in enumerate(alone):
        assert torch.allclose(d[i : i + 1], one, atol=1e-5), f"{name}: batch items interact"
    assert torch.allclose(red, x - d, atol=1e-6), f"{name}: red_grad(x) != x − denoise(x)"


def check_solver(
    spec: str,
    operator: str = "deblur",
    *,
    prior: str | Prior = "tv:iters=5",
    shape: tuple[int, int, int] | None = None,
    device: str | torch.device = "cpu",
) -> None:
    """Assert the :class:`~deq_explorer.fixedpoint.FixedPointMap` contract for the solver ``spec``.

    In both precisions, the map built for ``operator`` and ``prior`` keeps the
    state's shape, dtype and device, is finite and deterministic over a few
    steps, its ``image`` reads ``(B, C, H, W)`` out of any state, and it keeps
    the operator and measurement it was built with.

    Parameters
    ----------
    spec : str
        The solver, e.g. ``"pnp-admm"``.
    operator : str
        The operator to solve with.
    prior : str or Prior
        The prior to solve with.
    shape : (C, H, W), optional
        Image shape (default: the operator's declared example).
    device : str or torch.device
        Where the solve runs.
    """
    shape = tuple(shape or image_needs(operator).example)
    gen = torch.Generator().manual_seed(0)
    for dtype in DTYPES:
        op = operators.build(operator, shape=shape, device=device, dtype=dtype)
        x = torch.rand((2, *shape), dtype=dtype, generator=gen).to(device)
        y = op.measure(x, 0.01, gen)
        fp = solvers.build(spec, op=op, prior=_prior(prior, device), y=y)
        assert fp.op is op and fp.y is y, f"{spec}: the map does not keep its operator and y"
        z = fp.z0
        for k in range(3):
            tz = fp.T(z)
            assert tz.shape == z.shape, f"{spec}: T changes the state shape at step {k}"
            assert tz.dtype == dtype and tz.device == x.device, f"{spec}: T leaves {dtype}"
            assert bool(torch.isfinite(tz).all()), f"{spec}: T gives NaN or Inf at step {k}"
            assert torch.equal(fp.T(z), tz), f"{spec}: T is not deterministic"
            image = fp.image(tz)
            assert image.shape == x.shape, f"{spec}: image(z) has shape {tuple(image.shape)}"
            assert image.dtype == dtype, f"{spec}: image(z) leaves {dtype}"
            z = tz


@contextmanager
def installed(register: Callable[[], None], name: str = "test-pack") -> Iterator[None]:
    """A pack's registrations, made by its hook ``register``, for the ``with`` block.

    The entries come from the pack ``name``; on exit every registry is put back
    as it was (replaced entries too).
    """
    load_plugins()  # the installed packs first, so that the block's end keeps them
    with registering(name, keep=False):
        register()
        yield


try:
    import pytest
except ImportError:  # the checks need no pytest; only the fixture does
    pass
else:

    @pytest.fixture
    def installed_pack() -> Iterator[Callable[..., None]]:
        """``installed_pack(register, name="test-pack")`` installs a pack for one test."""
        with ExitStack() as stack:
            yield lambda register, name="test-pack": stack.enter_context(installed(register, name))
