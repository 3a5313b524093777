"""deepinv's linear physics as DEQ Explorer operators.

Each operator wraps a ``deepinv.physics.LinearPhysics`` for one image shape
``(C, H, W)``. deepinv's physics are ``nn.Module``\\ s whose ``.to(dtype)`` drops
the imaginary part of complex buffers (FFT symbols), so the wrapper builds one
physics per device and precision from float64 masters instead of converting one.

The data prox is exact wherever the physics has a closed form: from the SVD
``A = U diag(s) Vᵀ`` of a ``DecomposablePhysics`` (BlurFFT, Inpainting) and from
the aliased Fourier symbol of ``AAᵀ`` for circular Downsampling; both use the
core's :func:`~deq_explorer.operators.base.resolvent`, so ``γ = 0``, ``γ = ∞``
and one ``γ`` per batch item are exact. The others (MRI on real images,
Tomography) solve ``(I/γ + AᵀA) d = Aᵀ(y − Az)`` by conjugate gradients.
The projection onto ``{‖Ax − y‖ ≤ ε}`` is the base class's (bisection on the prox).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from deepinv.physics import MRI, BlurFFT, Downsampling, Inpainting, LinearPhysics, Tomography
from deepinv.physics.functional import gaussian_blur
from deepinv.physics.generator import (
    EquispacedMaskGenerator,
    GaussianMaskGenerator,
    RandomMaskGenerator,
)
from torch import Tensor

from deq_explorer.operators.base import LinearOperator, OperatorError, resolvent

__all__ = [
    "DecomposableOperator",
    "DownsamplingOperator",
    "MRIOperator",
    "PhysicsOperator",
    "TomographyOperator",
    "dinv_blur",
    "dinv_downsampling",
    "dinv_inpainting",
    "dinv_mri",
    "dinv_tomography",
]

#: ``make(device, dtype) -> physics``: builds the wrapped physics in one precision.
Maker = Callable[[torch.device, torch.dtype], LinearPhysics]


def _gamma_inverse(gamma: float | Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """``(1/γ, γ == 0)`` per batch item, shaped ``(B, 1, ..., 1)`` like ``like``."""
    b = like.shape[0]
    g = torch.as_tensor(gamma, dtype=torch.float64).to(like.device).reshape(-1).expand(b)
    if bool((g < 0).any()) or bool(torch.isnan(g).any()):
        raise OperatorError(f"prox step gamma must be >= 0, got {gamma!r}")
    shape = (b,) + (1,) * (like.ndim - 1)
    zero = (g == 0).reshape(shape)
    inv = torch.where(g == 0, 0.0, 1.0 / g).reshape(shape).to(like.real.dtype)
    return inv, zero


class PhysicsOperator(LinearOperator):
    """A deepinv ``LinearPhysics`` seen through the explorer's operator contract.

    Parameters
    ----------
    x_shape : tuple of int
        ``(C, H, W)`` of the images.
    make : callable
        ``make(device, dtype)`` builds the physics for that device and real dtype.
    name : str
        Registry name (for labels and errors).
    device, dtype
        Where and in which precision the first physics is built.
    cg_iters : int
        Most conjugate-gradient iterations of the generic prox.
    """

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        make: Maker,
        name: str,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        cg_iters: int = 200,
    ) -> None:
        super().__init__(x_shape, device, dtype)
        self.name = name
        self._make = make
        self._physics: dict[tuple[torch.device, torch.dtype], LinearPhysics] = {}
        self.cg_iters = int(cg_iters)
        probe = torch.zeros((1, *self.x_shape), device=self.device, dtype=self.dtype)
        self._y_shape = tuple(self._forward(self.physics(probe), probe).shape[1:])

    # -- the wrapped physics ----------------------------------------------------
    def physics(self, like: Tensor) -> LinearPhysics:
        """The physics on ``like``'s device, in ``like``'s real precision (built once)."""
        key = (like.device, like.real.dtype if like.is_complex() else like.dtype)
        p = self._physics.get(key)
        if p is None:
            p = self._make(*key)
            self._physics[key] = p
        return p

    def _forward(self, p: LinearPhysics, x: Tensor) -> Tensor:
        return p.A(x)

    def _adjoint(self, p: LinearPhysics, y: Tensor) -> Tensor:
        return p.A_adjoint(y)

    # -- the contract -------------------------------------------------------------
    @property
    def y_shape(self) -> tuple[int, ...]:
        return self._y_shape

    def A(self, x: Tensor) -> Tensor:
        self._check(x, self.x_shape, "x")
        return self._forward(self.physics(x), x)

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        return self._adjoint(self.physics(y), y)

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        """``z + d`` with ``(I/γ + AᵀA) d = Aᵀ(y − Az)`` solved by conjugate gradients.

        Starting from ``d = 0`` keeps ``d`` in the range of ``Aᵀ``, so ``γ = ∞``
        gives the least-squares point nearest to ``z``. Stops per item at a
        relative residual of 1e-7 (float32) or 1e-13 (float64), or after
        ``cg_iters`` iterations.
        """
        self._check(z, self.x_shape, "z")
        inv, zero = _gamma_inverse(gamma, z)
        p = self.physics(z)

        def normal(v: Tensor) -> Tensor:
            return inv * v + self._adjoint(p, self._forward(p, v))

        def dot(a: Tensor, b: Tensor) -> Tensor:
            return (a * b).flatten(1).sum(1).reshape(inv.shape)

        b = self._adjoint(p, y - self._forward(p, z))
        rtol = 1e-7 if z.dtype == torch.float32 else 1e-13
        stop = (rtol**2) * dot(b, b)
        d = torch.zeros_like(z)
        r = b.clone()
        q = r.clone()
        rr = dot(r, r)
        for _ in range(self.cg_iters):
            live = rr > stop
            if not bool(live.any()):
                break
            Aq = normal(q)
            qAq = dot(q, Aq)
            alpha = torch.where(live & (qAq > 0), rr / torch.where(qAq > 0, qAq, 1.0), 0.0)
            d = d + alpha * q
            r = r - alpha * Aq
            rr_next = dot(r, r)
            beta = torch.where(live, rr_next / torch.where(rr > 0, rr, 1.0), 0.0)
            q = r + beta * q
            rr = torch.where(live, rr_next, rr)
        return torch.where(zero, z, z + d)


class DecomposableOperator(PhysicsOperator):
    """A ``DecomposablePhysics`` (``A = U diag(s) Vᵀ``): closed-form prox from the SVD.

    ``Vᵀx = Vᵀz − s·r(s², γ)·(s·Vᵀz − Uᵀy)`` with ``r = 1/(1/γ + s²)`` (the
    core's ``resolvent``, exact at ``γ = 0`` and ``γ = ∞``).
    """

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        self._check(z, self.x_shape, "z")
        _gamma_inverse(gamma, z)  # validates gamma
        p = self.physics(z)
        vz, uy = p.V_adjoint(z), p.U_adjoint(y)
        s = p.mask
        r = resolvent(s * s, gamma, vz.ndim)
        return p.V(vz - s * r * (s * vz - uy))


class InpaintingOperator(DecomposableOperator):
    """Inpainting: the measured pixels are the mask's."""

    def support(self) -> Tensor:
        return self.physics(torch.empty(0, device=self.device, dtype=self.dtype)).mask[0, 0].bool()


class DownsamplingOperator(PhysicsOperator):
    """Circular filtered decimation: ``AAᵀ`` is diagonal in the low-resolution DFT.

    Its symbol is the mean of ``|Fh|²`` over the ``factor²`` aliases of each
    low-resolution frequency, so ``prox(z) = z − Aᵀ F⁻¹[r(λ, γ) F(Az − y)]``.
    """

    def _symbol(self, p: Downsampling) -> Tensor:
        f = p.factor
        fh2 = p.Fh2.real
        blocks = torch.stack(torch.chunk(fh2, f, dim=-2), dim=-1)
        blocks = torch.cat(torch.chunk(blocks, f, dim=-2), dim=-1)
        return blocks.mean(-1)

    def prox_data(self, z: Tensor, y: Tensor, gamma: float | Tensor) -> Tensor:
        self._check(z, self.x_shape, "z")
        _gamma_inverse(gamma, z)
        p = self.physics(z)
        res = torch.fft.fft2(self._forward(p, z) - y)
        step = torch.fft.ifft2(resolvent(self._symbol(p), gamma, z.ndim) * res).real
        return z - self._adjoint(p, step)

    def init(self, y: Tensor) -> Tensor:
        """Minimum-norm least-squares image ``A⁺y``."""
        self._check(y, self.y_shape, "y")
        zero = torch.zeros((y.shape[0], *self.x_shape), device=y.device, dtype=y.dtype)
        return self.prox_data(zero, y, float("inf"))


class MRIOperator(PhysicsOperator):
    """deepinv's single-coil MRI on real images.

    deepinv's MRI acts on complex images stored as two channels (real,
    imaginary); a real image ``x`` ``(B, 1, H, W)`` enters as ``(x, 0)`` and the
    adjoint keeps the real channel. Measurements are deepinv's ``(B, 2, H, W)``
    (real and imaginary k-space, centred). ``AᵀA`` has the eigenvalues
    ``{0, ½, 1}``, so the CG prox is exact after three iterations.
    """

    def _forward(self, p: LinearPhysics, x: Tensor) -> Tensor:
        return p.A(torch.cat([x, torch.zeros_like(x)], dim=1))

    def _adjoint(self, p: LinearPhysics, y: Tensor) -> Tensor:
        return p.A_adjoint(y)[:, :1]

    def support(self) -> Tensor:
        mask = self.physics(torch.empty(0, device=self.device, dtype=self.dtype)).mask
        return mask.reshape(-1, *mask.shape[-2:])[0].bool()


class TomographyOperator(PhysicsOperator):
    """deepinv's parallel-beam Radon transform scaled to ``‖A‖ = 1``.

    The scale is computed here (power iteration in float64) rather than by
    deepinv's ``normalize=True``, which fails in float64. ``init`` is deepinv's
    filtered back-projection.
    """

    def __init__(
        self,
        x_shape: tuple[int, int, int],
        make: Maker,
        name: str,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.scale = 1.0
        super().__init__(x_shape, make, name, device, dtype)
        p = self._make(torch.device("cpu"), torch.float64)
        g = torch.Generator().manual_seed(0)
        v = torch.randn((1, *self.x_shape), generator=g, dtype=torch.float64)
        lam = 1.0
        for _ in range(100):
            v = v / torch.linalg.vector_norm(v)
            w = p.A_adjoint(p.A(v))
            lam = float((w * v).sum())
            v = w
        self.scale = lam**-0.5

    def _forward(self, p: LinearPhysics, x: Tensor) -> Tensor:
        return self.scale * p.A(x)

    def _adjoint(self, p: LinearPhysics, y: Tensor) -> Tensor:
        return self.scale * p.A_adjoint(y)

    def init(self, y: Tensor) -> Tensor:
        self._check(y, self.y_shape, "y")
        return self.physics(y).A_dagger(y / self.scale)


# -- factories (registered by deq_explorer_deepinv.register) ------------------------


def _chw(shape: tuple[int, int, int], name: str) -> tuple[int, int, int]:
    if len(tuple(shape)) != 3:
        raise OperatorError(f"{name}: image shape must be (C, H, W), got {shape!r}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def dinv_blur(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    sigma: float = 1.6,
    angle: float = 0.0,
    anisotropy: float = 1.0,
) -> DecomposableOperator:
    """deepinv BlurFFT: circular Gaussian blur (sigma, angle, anisotropy)."""
    shape = _chw(shape, "dinv-blur")
    if not (sigma > 0 and anisotropy > 0):
        raise OperatorError(
            f"dinv-blur: sigma and anisotropy must be > 0, got {sigma}, {anisotropy}"
        )
    kernel = gaussian_blur(sigma=(sigma, sigma * anisotropy), angle=angle).double()
    if kernel.shape[-2] > shape[1] or kernel.shape[-1] > shape[2]:
        raise OperatorError(
            f"dinv-blur: the {tuple(kernel.shape[-2:])} kernel of sigma={sigma} does not fit "
            f"a {shape[1]}×{shape[2]} image: use a smaller sigma or a larger image"
        )

    def make(dev: torch.device, dt: torch.dtype) -> LinearPhysics:
        return BlurFFT(img_size=shape, filter=kernel.to(dev, dt), device=dev)

    return DecomposableOperator(shape, make, "dinv-blur", device, dtype)


FILTERS = ("bicubic", "bilinear", "gaussian", "sinc")


def dinv_downsampling(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    factor: int = 2,
    filter: str = "bicubic",
) -> DownsamplingOperator:
    """deepinv Downsampling: circular anti-alias filter, then decimation (factor, filter)."""
    shape = _chw(shape, "dinv-downsampling")
    if factor < 2 or shape[1] % factor or shape[2] % factor:
        raise OperatorError(
            f"dinv-downsampling: factor must be >= 2 and divide the image size "
            f"{shape[1]}×{shape[2]}; got factor={factor}: crop the image or change the factor"
        )
    if filter not in FILTERS:
        raise OperatorError(f"dinv-downsampling: filter must be one of {FILTERS}, got {filter!r}")
    kernel = Downsampling(img_size=shape, filter=filter, factor=factor).filter.double()

    def make(dev: torch.device, dt: torch.dtype) -> LinearPhysics:
        return Downsampling(
            img_size=shape,
            filter=kernel.to(dev, dt),
            factor=factor,
            padding="circular",
            device=dev,
        )

    return DownsamplingOperator(shape, make, "dinv-downsampling", device, dtype)


def dinv_inpainting(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    p: float = 0.5,
    seed: int = 0,
) -> InpaintingOperator:
    """deepinv Inpainting: keep a random fraction p of the pixels (p, seed)."""
    shape = _chw(shape, "dinv-inpainting")
    if not 0 < p <= 1:
        raise OperatorError(f"dinv-inpainting: kept fraction p must be in (0, 1], got {p}")
    rng = torch.Generator().manual_seed(seed)
    mask = Inpainting(img_size=shape, mask=float(p), pixelwise=True, rng=rng).mask.double()

    def make(dev: torch.device, dt: torch.dtype) -> LinearPhysics:
        return Inpainting(img_size=shape, mask=mask.to(dev, dt), device=dev)

    return InpaintingOperator(shape, make, "dinv-inpainting", device, dtype)


MRI_PATTERNS = {
    "gaussian": GaussianMaskGenerator,
    "random": RandomMaskGenerator,
    "equispaced": EquispacedMaskGenerator,
}


def dinv_mri(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    acceleration: int = 4,
    pattern: str = "gaussian",
    seed: int = 0,
) -> MRIOperator:
    """deepinv single-coil MRI, Cartesian lines (acceleration, pattern, seed)."""
    c, h, w = _chw(shape, "dinv-mri")
    if c != 1:
        raise OperatorError(
            f"dinv-mri takes a single-channel image, got {c} channels: convert it to gray first"
        )
    if pattern not in MRI_PATTERNS:
        raise OperatorError(
            f"dinv-mri: pattern must be one of {tuple(MRI_PATTERNS)}, got {pattern!r}"
        )
    if acceleration < 1:
        raise OperatorError(f"dinv-mri: acceleration must be >= 1, got {acceleration}")
    rng = torch.Generator().manual_seed(seed)
    gen = MRI_PATTERNS[pattern](img_size=(h, w), acceleration=acceleration, rng=rng)
    mask = gen.step(batch_size=1, seed=seed)["mask"].reshape(h, w).double()

    def make(dev: torch.device, dt: torch.dtype) -> LinearPhysics:
        return MRI(mask=mask.to(dev, dt), img_size=(2, h, w), device=dev)

    return MRIOperator((c, h, w), make, "dinv-mri", device, dtype)


def dinv_tomography(
    shape: tuple[int, int, int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    angles: int = 60,
    circle: bool = False,
) -> TomographyOperator:
    """deepinv Tomography: parallel-beam Radon transform scaled to ‖A‖ = 1 (angles, circle)."""
    c, h, w = _chw(shape, "dinv-tomography")
    if h != w:
        raise OperatorError(f"dinv-tomography needs a square image, got {h}×{w}: crop it first")
    if angles < 1:
        raise OperatorError(f"dinv-tomography: angles must be >= 1, got {angles}")

    def make(dev: torch.device, dt: torch.dtype) -> LinearPhysics:
        return Tomography(
            angles=angles,
            img_width=h,
            circle=circle,
            adjoint_via_backprop=True,
            normalize=False,
            device=dev,
            dtype=dt,
        )

    return TomographyOperator((c, h, w), make, "dinv-tomography", device, dtype)
