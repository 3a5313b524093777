"""The linear-operator contract every forward model fulfils.

Besides ``A`` and ``A_adjoint`` an operator knows its data-fidelity steps:
``grad_data``, ``prox_data`` and the projection ``project`` onto the
measurement-consistency set ``{u : ‖Au − y‖ ≤ ε}``. The projection rests on one
identity: the prox ``p(μ) = prox_data(x, y, μ)`` satisfies
``A p(μ) − y = (I + μAAᵀ)⁻¹(Ax − y)``, and ``p(μ)`` is the projection for the
``μ ≥ 0`` at which ``‖A p(μ) − y‖ = ε`` (``μ = ∞`` for ``ε = 0``). Operators
that can write ``Ax − y`` in an eigenbasis of ``AAᵀ`` (:meth:`spectrum`) get
that ``μ`` by a scalar root search with no further transform; the others fall
back to bisection on ``μ`` with ``prox_data``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from deq_explorer.errors import OperatorError
from deq_explorer.operators.noise import add_noise

__all__ = ["LinearOperator", "OperatorError", "resolvent"]


def resolvent(s: Tensor, gamma: float | Tensor, ndim: int = 4) -> Tensor:
    """``1 / (1/γ + s)`` elementwise; for ``γ = inf`` the pseudo-inverse ``s⁺``.

    Parameters
    ----------
    s : Tensor
        Non-negative eigenvalues (of ``AAᵀ`` or ``AᵀA``), broadcastable to the
        trailing axes of a tensor with ``ndim`` axes.
    gamma : float or Tensor
        Step ``γ ≥ 0``, a float or one per batch item (shape ``(B,)``). Where
        ``γ = inf``, eigenvalues below ``finfo.eps · max(s)`` count as 0
        (numerically outside the range of ``A``).
    ndim : int
        Number of axes of the batched tensor the result multiplies.
    """
    if isinstance(gamma, Tensor) and gamma.ndim == 1:
        gamma = gamma.to(s.device).reshape(-1, *([1] * (ndim - 1)))
    g = torch.as_tensor(gamma, dtype=s.dtype, device=s.device)
    cut = torch.where(torch.isinf(g), torch.finfo(s.dtype).eps * s.max(), 0.0)
    den = 1.0 / g + s
    return torch.where(den > cut, den.clamp_min(torch.finfo(s.dtype).tiny).reciprocal(), 0.0)


class LinearOperator(ABC):
    """A linear forward model ``y = A x`` bound to one image shape.

    Images are real tensors of shape ``(B, C, H, W)`` with ``(C, H, W) ==
    self.x_shape``; measurements have shape ``(B,) + self.y_shape`` and are
    complex where the physics says so (MRI). Every method works batched, on
    CPU and CUDA, in float32 and float64: the operator's own tensors (kernel
    spectra, masks) follow the device and precision of the input.

    Parameters
    ----------
    x_shape : tuple of int
        ``(C, H, W)`` of the images this operator acts on.
    device, dtype
        Where and in which precision the operator's tensors are prepared first.
    """

    #: registry name of the operator (set by subclasses)
    name: str = ""

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = tuple(x_shape)
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise OperatorError(f"image shape must be (C, H, W) of positive ints, got {x_shape!r}")
        self.x_shape = shape
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self._masters: dict[str, Tensor] = {}
        self._cache: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}

    # -- the operator's own tensors, cached per device and precision ---------
    def _register(self, name: str, value: Tensor) -> None:
        """Keep ``value`` (built in float64 on CPU) under ``name``."""
        self._masters[name] = value.detach().cpu()
        self._cache = {k: v for k, v in self._cache.items() if k[0] != name}
        self._buf(name, torch.empty(0, device=self.device, dtype=self.dtype))

    def _buf(self, name: str, like: Tensor) -> Tensor:
        """The tensor ``name`` on ``like``'s device, in ``like``'s precision."""
        real = like.real.dtype if like.is_complex() else like.dtype
        key = (name, like.device, real)
        out = self._cache.get(key)
        if out is None:
            value = self._masters[name]
            if value.is_complex():
                value = value.to(torch.promote_types(real, torch.complex64))
            elif value.is_floating_point():
                value = value.to(real)
            out = value.to(like.device)
            self._cache[key] = out
        return out

    def _check(self, t: Tensor, shape: tuple[int, ...], what: str) -> None:
        if t.ndim != len(shape) + 1 or tuple(t.shape[1:]) != shape:
            raise OperatorError(
                f"{self.name or type(self).__name__}: {what} must have shape "
                f"(B, {', '.join(map(str, shape))}), got {tuple(t.shape)}"
            )

    # -- the model ------------------------------------------------------------
    @property
    @abstractmethod
    def y_shape(self) -> tuple[int, ...]:
        """Shape of one measurement (without the batch axis)."""

    def grid(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """Where the measurement's pixels lie on the image's pixel grid: ``(scale, offset)``.

        Measurement pixel ``(i, j)`` is centred on image coordinate ``offset + scale · (i, j)``
        (rows, then columns), which lets a viewer overlay the two. By default a
        measurement of the image's size lies on its grid; any other size is unknown (None).
        """
        if tuple(self.y_shape[-2:]) == tuple(self.x_shape[-2:]):
            return (1.0, 1.0), (0.0, 0.0)
        return None

    @abstractmethod
    def A(self, x: Tensor) -> Tensor:
        """Forward model ``(B, C, H, W) -> (B, *y_shape)``."""

    @abstractmethod
    def A_adjoint(self, y: Tensor) -> Tensor:
        """Exact adjoint ``(B, *y_shape) -> (B, C, H, W)`` (real part for real images)."""

    def grad_data(self, x: Tensor, y: Tensor) -> Tensor:
        """Gradient of ``½‖Ax − y‖²`` at ``x``: ``Aᵀ(Ax − y)``."""
        return self.A_adjoint(self.A(x) - y)

    @abstractmethod
    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``argmin_x ½‖Ax − y‖² + ‖x − z‖² / (2γ)``.

        ``gamma`` is a float or a ``(B,)`` tensor; ``γ = inf`` gives the
        projection of ``z`` onto the least-squares set ``{x : AᵀAx = Aᵀy}``.
        """

    def spectrum(self, r: Tensor) -> tuple[Tensor, Tensor]:
        """``r`` in an orthonormal eigenbasis of ``AAᵀ``.

        Parameters
        ----------
        r : Tensor
            Measurements ``(B, *y_shape)``.

        Returns
        -------
        w : Tensor
            ``(B, K)`` squared coefficients of ``r`` (grouped by eigenvalue is
            fine); ``w.sum(1) == ‖r‖²``.
        s : Tensor
            ``(K,)`` or ``(B, K)`` eigenvalues of ``AAᵀ`` in the working
            precision (those below ``finfo.eps · max`` count as 0).

        Raises
        ------
        NotImplementedError
            If the operator has no such basis (``project`` then bisects).
        """
        raise NotImplementedError

    def project(self, x: Tensor, y: Tensor, eps: float | Tensor = 0.0) -> Tensor:
        """Euclidean projection of ``x`` onto ``{u : ‖Au − y‖ ≤ ε}`` (per batch item).

        Parameters
        ----------
        x : Tensor
            Images ``(B, C, H, W)``.
        y : Tensor
            Measurements ``(B, *y_shape)``.
        eps : float or Tensor
            Radius ``ε ≥ 0`` (a float or one per batch item).

        Notes
        -----
        If ``y`` is farther than ``ε`` from the range of ``A`` the set is empty
        and the least-squares point nearest to ``x`` is returned.
        """
        eps_t = torch.as_tensor(eps, dtype=torch.float64).to(x.device).reshape(-1)
        if bool((eps_t < 0).any()) or not bool(torch.isfinite(eps_t).all()):
            raise OperatorError(f"projection radius eps must be finite and >= 0, got {eps!r}")
        eps_t = eps_t.expand(x.shape[0])
        if not bool(eps_t.any()):
            return self.prox_data(x, y, math.inf)
        try:
            w, s = self.spectrum(self.A(x) - y)
        except NotImplementedError:
            return self._project_by_bisection(x, y, eps_t)
        mu = _secular_root(w, s, eps_t)
        return self.prox_data(x, y, mu.to(x.real.dtype))

    def _project_by_bisection(self, x: Tensor, y: Tensor, eps: Tensor, steps: int = 60) -> Tensor:
        """Bisection on ``log μ`` with ``prox_data`` (for operators without :meth:`spectrum`)."""
        b = x.shape[0]
        res = self.norm(self.A(x) - y).double()
        lo = torch.full((b,), -30.0, dtype=torch.float64, device=x.device)
        hi = torch.full((b,), 30.0, dtype=torch.float64, device=x.device)
        for _ in range(steps):
            mid = (lo + hi) / 2
            r = self.norm(self.A(self.prox_data(x, y, mid.exp().to(x.real.dtype))) - y).double()
            ok = r <= eps
            hi = torch.where(ok, mid, hi)
            lo = torch.where(ok, lo, mid)
        mu = torch.where(eps == 0, math.inf, hi.exp())
        mu = torch.where(res <= eps, 0.0, mu)
        return self.prox_data(x, y, mu.to(x.real.dtype))

    def init(self, y: Tensor) -> Tensor:
        """Starting image from a measurement (default: back-projection ``Aᵀy``)."""
        return self.A_adjoint(y)

    def support(self) -> Tensor | None:
        """Boolean ``(H, W)`` mask of the measured entries of ``y``; ``None``: all are."""
        return None

    def measure(
        self, x: Tensor, sigma: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Simulated measurement ``Ax + e``, AWGN ``e`` only on measured entries.

        See :func:`deq_explorer.operators.noise.add_noise` for ``sigma``.
        """
        y = self.A(x)
        noisy = add_noise(y, sigma, generator)
        mask = self.support()
        if mask is None:
            return noisy
        return torch.where(mask.to(y.device), noisy, y)

    def lipschitz(self) -> float:
        """``‖A‖² = ‖AᵀA‖``, the Lipschitz constant of ``grad_data`` (power iteration)."""
        g = torch.Generator().manual_seed(0)
        x = torch.randn((1, *self.x_shape), generator=g, dtype=torch.float64).to(self.device)
        lam = 0.0
        for _ in range(100):
            x = x / torch.linalg.vector_norm(x)
            ax = self.A_adjoint(self.A(x))
            lam = float(torch.sum(ax * x))
            x = ax
        return lam

    def norm(self, y: Tensor) -> Tensor:
        """Per-item Euclidean norm of measurements ``(B, ...)`` -> ``(B,)``."""
        return torch.linalg.vector_norm(y.reshape(y.shape[0], -1), dim=1)


def _secular_root(w: Tensor, s: Tensor, eps: Tensor, steps: int = 60) -> Tensor:
    """Smallest ``μ ≥ 0`` with ``Σ_k w_k / (1 + μ s_k)² ≤ ε²``, per row (float64).

    ``μ = 0`` when already inside, ``inf`` when the part of ``w`` with ``s = 0``
    alone exceeds ``ε²``. Safeguarded Newton on ``g(μ)^{-1/2} − t^{-1/2}``
    (nearly linear in ``μ``), kept inside a bracket, ending on the feasible side.
    """
    cut = torch.finfo(s.dtype).eps * s.max()
    w = w.double()
    s = torch.where(s > cut, s, 0).double().to(w.device).expand_as(w)
    e2 = eps.double().to(w.device) ** 2
    pos = s > 0
    wp = torch.where(pos, w, 0.0)
    w0 = (w - wp).sum(1)
    t = e2 - w0
    inside = w.sum(1) <= e2
    reachable = (t > 0) & ~inside
    tt = torch.where(reachable, t, 1.0)
    live = pos & (wp > 0)
    smin = torch.where(live, s, math.inf).amin(1)
    smax = torch.where(live, s, 0.0).amax(1)
    ratio = (wp.sum(1) / tt).sqrt()
    lo = torch.where(reachable, (ratio - 1).clamp_min(0) / smax, 0.0)
    hi = torch.where(reachable, (ratio - 1).clamp_min(0) / smin, 0.0)
    lo, hi = lo.nan_to_num(0.0), hi.nan_to_num(0.0)

    def g_and_slope(mu: Tensor) -> tuple[Tensor, Tensor]:
        d = 1 + mu[:, None] * s
        return (wp / d**2).sum(1), (-2 * wp * s / d**3).sum(1)

    mu = lo.clone()
    for _ in range(steps):
        g, dg = g_and_slope(mu)
        feasible = g <= tt
        hi = torch.where(feasible, torch.minimum(hi, mu), hi)
        lo = torch.where(feasible, lo, torch.maximum(lo, mu))
        done = ((g - tt).abs() <= 1e-13 * tt) | (hi - lo <= 1e-15 * hi) | ~reachable
        if bool(done.all()):
            break
        phi = g.rsqrt() - tt.rsqrt()
        dphi = -0.5 * g.pow(-1.5) * dg
        newton = mu - phi / dphi
        mid = torch.where(lo > 0, (lo * hi).sqrt(), (lo + hi) / 2)
        ok = torch.isfinite(newton) & (newton > lo) & (newton < hi)
        mu = torch.where(ok, newton, mid)
    bumped = mu * (1 + 1e-9)
    mu = torch.where(g_and_slope(bumped)[0] <= tt, bumped, hi)
    mu = torch.where(reachable, mu, math.inf)
    return torch.where(inside, 0.0, mu)
