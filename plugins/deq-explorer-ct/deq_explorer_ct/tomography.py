"""The parallel-beam CT operator ``ct``: Radon transform, FBP, CG prox, projection."""

from __future__ import annotations

import math
import operator
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy import sparse
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, OperatorError
from deq_explorer_ct.cg import CG, conjugate_gradient
from deq_explorer_ct.radon import Geometry, parallel_beam, radon_matrix, ramp_filter

__all__ = ["CT", "DEFAULT_CG", "MAX_NONZEROS", "PRESETS", "ct"]

#: largest sparse matrix :func:`ct` builds (nonzeros); each one costs about 40 bytes in all
MAX_NONZEROS = 60_000_000

#: CG rule of :class:`CT` unless one is given
DEFAULT_CG = CG()

#: named scans: (angles, arc in degrees); a preset fills the options left at their defaults
PRESETS: dict[str, tuple[int, float]] = {
    "sparse-view": (30, 180.0),
    "limited-angle": (60, 120.0),
}


@dataclass(frozen=True)
class _System:
    """``A = scale·R`` and ``Aᵀ`` as CSR matrices, ``‖A‖₂ = 1``."""

    A: Tensor
    At: Tensor
    scale: float


def _torch_csr(m: sparse.csr_matrix) -> Tensor:
    # 32-bit indices make the sparse products about twice as fast as 64-bit ones
    index = np.int32 if m.nnz < 2**31 else np.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(index)),
            torch.from_numpy(m.indices.astype(index)),
            torch.from_numpy(m.data),
            m.shape,
            check_invariants=False,
        )


@lru_cache(maxsize=4)
def _system(g: Geometry) -> _System:
    """Build (once per geometry) the normalised matrices, float64 on the CPU."""
    R = radon_matrix(g)
    Rt = R.T.tocsr()
    # power iteration with Rayleigh quotients for ‖R‖₂²; the constant image is
    # close to the top singular vector, so it converges in a few dozen steps
    v = np.full(R.shape[1], 1 / math.sqrt(R.shape[1]))
    lam = 0.0
    for _ in range(1000):
        w = Rt @ (R @ v)
        lam_new = float(v @ w)
        v = w / np.linalg.norm(w)
        if abs(lam_new - lam) <= 1e-15 * lam_new:
            break
        lam = lam_new
    scale = 1 / math.sqrt(lam_new)
    return _System(A=_torch_csr(R * scale), At=_torch_csr(Rt * scale), scale=scale)


class _Apply(torch.autograd.Function):
    """``M @ cols`` whose backward is ``Mᵀ @ grad`` (exact, twice differentiable)."""

    @staticmethod
    def forward(ctx, cols: Tensor, M: Tensor, Mt: Tensor) -> Tensor:
        ctx.pair = (M, Mt)
        return M @ cols

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        M, Mt = ctx.pair
        return _Apply.apply(grad, Mt, M), None, None


class CT(LinearOperator):
    """Parallel-beam CT: ``A`` is a discrete Radon transform normalised to ``‖A‖₂ = 1``.

    Measurements (sinograms) have shape ``(B, C, n_angles, n_detectors)``;
    each channel is scanned separately. ``A`` integrates the bilinearly
    interpolated image along unit-spaced parallel rays and is stored as a
    sparse matrix; ``A_adjoint`` applies its transpose, so it is the exact
    adjoint. ``A`` is ``scale`` times the line integrals in pixel units.
    :meth:`prox_data` uses conjugate gradients; :meth:`project` the base class's
    bisection on it.

    Parameters
    ----------
    x_shape : tuple of int
        ``(C, H, W)``.
    geometry : Geometry
        The scan (see :func:`deq_explorer_ct.radon.parallel_beam`).
    cg : CG
        Tolerance and iteration cap of the conjugate-gradient solves in
        :meth:`prox_data`.
    device, dtype
        Where the matrices are prepared first (others are served on demand).
    """

    name = "ct"

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        geometry: Geometry,
        *,
        cg: CG = DEFAULT_CG,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(x_shape, device, dtype)
        if (geometry.height, geometry.width) != self.x_shape[1:]:
            raise OperatorError(
                f"ct: geometry is for {geometry.height}×{geometry.width} images, "
                f"not {self.x_shape[1]}×{self.x_shape[2]}"
            )
        self.geometry = geometry
        self.cg = cg
        system = _system(geometry)
        self.scale = system.scale
        self._register("A", system.A)
        self._register("At", system.At)

    @property
    def y_shape(self) -> tuple[int, int, int]:
        return (self.x_shape[0], len(self.geometry.angles), self.geometry.detectors)

    # -- the model ------------------------------------------------------------
    def _mul(self, t: Tensor, adjoint: bool, out_shape: tuple[int, ...]) -> Tensor:
        if t.is_complex():
            raise OperatorError(f"ct: tensors must be real, got {t.dtype}")
        M, Mt = self._buf("A", t), self._buf("At", t)
        if adjoint:
            M, Mt = Mt, M
        cols = t.reshape(t.shape[0] * t.shape[1], -1).T
        return _Apply.apply(cols, M, Mt).T.reshape(t.shape[0], *out_shape)

    def A(self, x: Tensor) -> Tensor:
        """Sinograms ``(B, C, n_angles, n_detectors)`` of images ``(B, C, H, W)``."""
        self._check(x, self.x_shape, "image")
        return self._mul(x, False, self.y_shape)

    def A_adjoint(self, y: Tensor) -> Tensor:
        """Back-projection ``(B, C, n_angles, n_detectors) -> (B, C, H, W)``, exact adjoint."""
        self._check(y, self.y_shape, "sinogram")
        return self._mul(y, True, self.x_shape)

    def lipschitz(self) -> float:
        """``‖A‖² = 1`` (the matrices are normalised at construction)."""
        return 1.0

    def init(self, y: Tensor) -> Tensor:
        """Filtered back-projection: ramp filter along detectors, then ``dθ/scale²·Aᵀ``.

        With ``y = A x`` and many views over 180° this reproduces ``x`` (up to
        discretisation); with few views or a short arc it shows the usual
        streaks / missing-wedge artefacts.
        """
        self._check(y, self.y_shape, "sinogram")
        return self.A_adjoint(ramp_filter(y)) * (self.geometry.angle_step / self.scale**2)

    # -- proximal map -----------------------------------------------------------
    def prox_data(
        self, z: Tensor, y: Tensor, gamma: float | Tensor, *, x0: Tensor | None = None
    ) -> Tensor:
        """``argmin_x ½‖Ax − y‖² + ‖x − z‖²/(2γ)`` by CG on ``(I + γAᵀA)x = z + γAᵀy``.

        Parameters
        ----------
        z : Tensor
            ``(B, C, H, W)``.
        y : Tensor
            ``(B, C, n_angles, n_detectors)``.
        gamma : float or Tensor
            ``γ ≥ 0``, a number or one per item ``(B,)``. ``γ = 0`` returns
            ``z``; ``γ = inf`` returns ``z − A⁺(Az − y)``, the least-squares
            solution nearest ``z`` (CG on ``AᵀA d = Aᵀ(Az − y)`` from ``d = 0``).
        x0 : Tensor, optional
            Warm start ``(B, C, H, W)`` for the finite-``γ`` solve (default ``z``).
        """
        self._check(z, self.x_shape, "image")
        g = torch.as_tensor(gamma, dtype=z.dtype, device=z.device)
        if g.ndim > 1 or (g.ndim == 1 and g.numel() not in (1, z.shape[0])):
            raise OperatorError(
                f"ct: gamma must be a number or a (B,) tensor; got shape {tuple(g.shape)}"
            )
        if bool(torch.any(torch.isnan(g) | (g < 0))):
            raise OperatorError(f"ct: gamma must be >= 0 (inf allowed); got {gamma!r}")
        g = g.reshape(-1, 1, 1, 1)
        inf = torch.isinf(g)
        gf = torch.where(inf, 0, g)
        x = conjugate_gradient(
            lambda v: v + gf * self.A_adjoint(self.A(v)),
            z + gf * self.A_adjoint(y),
            z if x0 is None else x0,
            self.cg,
        )
        inf = inf.reshape(-1).expand(z.shape[0])
        if bool(inf.any()):
            x = x.clone()
            x[inf] = self._least_squares(z[inf], y[inf])
        return x

    def project(self, x: Tensor, y: Tensor, eps: float | Tensor = 0.0) -> Tensor:
        """Projection of ``x`` onto ``{u : ‖Au − y‖ ≤ ε}`` per item (ε a float or ``(B,)``).

        The base class's bisection on ``prox_data``, except that items whose set
        is empty (``ε`` below the least-squares residual, as for noisy data and
        more measurements than pixels) get ``prox_data(x, y, inf)`` at once
        instead of a long search towards an infinite ``μ``.
        """
        eps_t = torch.as_tensor(eps, dtype=torch.float64).to(x.device).reshape(-1)
        bad = not bool(torch.isfinite(eps_t).all()) or bool((eps_t < 0).any())
        if bad or not bool(eps_t.any()):
            return super().project(x, y, eps)  # refuses bad ε; ε = 0 is prox_data(x, y, inf)
        eps_t = eps_t.expand(x.shape[0])
        ls = self.prox_data(x, y, math.inf)
        empty = self.norm(self.A(ls) - y).double() > eps_t
        if not bool(empty.any()):
            return super().project(x, y, eps_t)
        out = ls.clone()
        if not bool(empty.all()):
            out[~empty] = super().project(x[~empty], y[~empty], eps_t[~empty])
        return out

    def _least_squares(self, z: Tensor, y: Tensor) -> Tensor:
        """``z − A⁺(Az − y)``; CG from 0 keeps ``d`` in the row space (least norm)."""
        rhs = self.A_adjoint(self.A(z) - y)
        d = conjugate_gradient(
            lambda v: self.A_adjoint(self.A(v)), rhs, torch.zeros_like(z), self.cg
        )
        return z - d


def ct(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    angles: int = 60,
    arc: float = 180.0,
    preset: str = "",
) -> CT:
    """Parallel-beam CT: Radon transform over `angles` views spanning `arc` degrees, FBP start.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(C, H, W)``; each channel is scanned on its own.
    device, dtype
        Placement of the operator's matrices.
    angles : int
        Number of views, equally spaced: ``θ_k = k·arc/angles``.
    arc : float
        Angular range in degrees, in (0, 360]; 180 is a complete scan.
    preset : str
        ``"sparse-view"`` (30 views over 180°) or ``"limited-angle"`` (60 views
        over 120°); it sets the options left at their defaults.
    """
    if preset:
        if preset not in PRESETS:
            known = ", ".join(PRESETS)
            raise OperatorError(f"ct: unknown preset {preset!r}; known presets: {known}")
        p_angles, p_arc = PRESETS[preset]
        angles = p_angles if angles == 60 else angles
        arc = p_arc if arc == 180.0 else arc
    if isinstance(angles, bool) or not isinstance(angles, int) or angles < 1:
        raise OperatorError(f"ct: angles must be a whole number >= 1; got {angles!r}")
    if not isinstance(arc, (int, float)) or not 0 < arc <= 360:
        raise OperatorError(f"ct: arc must be in (0, 360] degrees; got {arc!r}")
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise OperatorError(f"ct: shape must be (C, H, W) with positive integers; got {shape!r}")
    if min(shape[1:]) < 2:
        raise OperatorError(f"ct: images must be at least 2×2 pixels; got {shape[1]}×{shape[2]}")
    nonzeros = 2.3 * angles * shape[1] * shape[2]  # measured: 2.2–2.3 per view and pixel
    if nonzeros > MAX_NONZEROS:
        raise OperatorError(
            f"ct: {angles} views of a {shape[1]}×{shape[2]} image need a Radon matrix of about "
            f"{nonzeros / 1e6:.0f} million entries (~{nonzeros * 40 / 2**30:.1f} GiB); use fewer "
            "views or a smaller (downscaled or cropped) image"
        )
    return CT(
        shape, parallel_beam(shape[1], shape[2], angles, float(arc)), device=device, dtype=dtype
    )
