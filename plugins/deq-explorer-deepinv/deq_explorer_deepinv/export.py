"""DEQ Explorer's priors and operators as deepinv models and physics.

The other direction of the pack: a deepinv user plugs a shipped (or trained)
prior into deepinv's own algorithms, on the explorer's operators::

    from deepinv.optim import PnP, optim_builder
    from deepinv.optim.data_fidelity import L2

    denoiser = as_deepinv_denoiser("dncnn-awgn")
    physics = as_deepinv_physics("deblur:sigma=1.6", shape=(1, 64, 64), sigma=0.01)
    model = optim_builder("PGD", prior=PnP(denoiser), data_fidelity=L2(), max_iter=30,
                          params_algo={"stepsize": 1.0, "g_param": 0.02})
    x_hat = model(physics(x), physics)  # deepinv's PnP-PGD = the explorer's fb solver

Complex measurements (the explorer's ``mri``) follow deepinv's MRI convention:
real tensors with the real and imaginary parts as channels, ``(B, 2C, H, W)``
(first the ``C`` real parts, then the ``C`` imaginary ones; ``(B, 2, H, W)`` for
a gray image), and k-space centred as deepinv's centred orthonormal FFT
(``fftshift(fft2(ifftshift(x)))``) makes it. So ``as_deepinv_physics("mri", ...)``
gives the same measurement as ``deepinv.physics.MRI(mask=fftshift(op.mask))``
applied to the image with a zero imaginary channel, and its ``A_adjoint`` is the
real part of deepinv's. Images stay real ``(B, C, H, W)``, so gray priors apply.
"""

from __future__ import annotations

import math

import torch
from deepinv.models import Denoiser
from deepinv.physics import GaussianNoise, LinearPhysics
from torch import Tensor

from deq_explorer.errors import OperatorError, PriorError
from deq_explorer.operators.base import LinearOperator
from deq_explorer.operators.mri import MRI
from deq_explorer.priors.base import Prior
from deq_explorer.registry import operators

__all__ = ["DEQDenoiser", "DEQPhysics", "as_deepinv_denoiser", "as_deepinv_physics"]


def _noise_level(sigma: float | Tensor, x: Tensor) -> float | Tensor:
    """deepinv's ``sigma`` (a number, a 0-d, ``(B,)`` or ``(B, 1, 1, 1)`` tensor) as ours."""
    if isinstance(sigma, (int, float)):
        return float(sigma)
    s = torch.as_tensor(sigma).to(device=x.device, dtype=x.real.dtype)
    if s.numel() == 1:
        return s.reshape(())
    if s.numel() != x.shape[0]:
        raise PriorError(
            f"sigma has {s.numel()} values for a batch of {x.shape[0]} images: give one noise "
            "level, or one per image"
        )
    return s.reshape(-1)


class DEQDenoiser(Denoiser):
    """A DEQ Explorer :class:`~deq_explorer.priors.base.Prior` as a ``deepinv.models.Denoiser``.

    ``forward(x, sigma)`` is ``prior.denoise(x, sigma)``. The prior's network is a
    submodule, so ``.to(device)`` / ``.double()`` move it (and the prior with it).
    It runs where it lives: an input on another device or in another precision is
    copied there, and the result comes back on the input's device and dtype.

    Parameters
    ----------
    prior : Prior
        Any denoiser prior (a shipped checkpoint, ``tv``, a pack's prior).
    """

    def __init__(self, prior: Prior) -> None:
        super().__init__()
        self.prior = prior
        self.net = prior.module  # None for priors without a network (tv, identity)

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        """Denoise ``x`` ``(B, C, H, W)`` at noise level ``sigma`` (float or one per image)."""
        p = next(self.net.parameters(), None) if self.net is not None else None
        if p is None or (p.device == x.device and p.dtype == x.dtype):
            return self.prior.denoise(x, _noise_level(sigma, x))
        inp = x.to(device=p.device, dtype=p.dtype)
        return self.prior.denoise(inp, _noise_level(sigma, inp)).to(x)


def as_deepinv_denoiser(
    prior: str | Prior, device: str | torch.device | None = None
) -> DEQDenoiser:
    """A prior spec (``"dncnn-awgn"``, ``"tv:weight=0.1"``, a checkpoint path) or a Prior.

    Every shipped denoiser prior works. ``mcnet-sr2`` and other priors trained in
    the ``mcnet`` mode are refused: their network is MCNet's regulariser, trained
    with its backbone and learned β, not a denoiser.

    Raises
    ------
    PriorError
        If the prior was trained as MCNet's regulariser.
    """
    from deq_explorer.api import build_prior

    built = build_prior(prior, device)
    if getattr(built, "metadata", {}).get("mode") == "mcnet":
        raise PriorError(
            f"prior {built.name!r} was trained as MCNet's regulariser (mode mcnet), to be used "
            "with its backbone and learned β in mcnet-admm, not as a denoiser: use a denoiser "
            "prior such as 'sn-dncnn-awgn' or 'dncnn-awgn' in deepinv"
        )
    return DEQDenoiser(built)


def _kspace_phase(h: int, w: int, like: Tensor) -> Tensor:
    """The unit-modulus factor of ``fft2(ifftshift(x)) = phase ⊙ fft2(x)``, shaped ``(H, W)``."""
    delta = torch.zeros((h, w), dtype=torch.float64)
    delta[0, 0] = 1.0
    phase = torch.fft.fft2(torch.fft.ifftshift(delta))
    return phase.to(device=like.device, dtype=like.dtype)


class DEQPhysics(LinearPhysics):
    """A DEQ Explorer :class:`~deq_explorer.operators.base.LinearOperator` as deepinv physics.

    ``A``, ``A_adjoint`` and the data prox are the operator's own: ``prox_l2`` is its
    closed-form ``prox_data`` (deepinv's ``prox_l2(z, y, γ)`` minimises
    ``γ/2‖Ax − y‖² + ½‖x − z‖²``, the same γ as ours) and ``A_dagger`` its
    ``γ = ∞`` prox from 0, the minimum-norm least-squares image. The noise is
    Gaussian with std ``sigma``, added only on the measured entries (as the
    explorer's ``measure``). Complex measurements: see the module docstring.

    Parameters
    ----------
    op : LinearOperator
        The operator, built for one image shape.
    sigma : float
        Standard deviation of the Gaussian noise ``physics(x)`` adds.
    """

    def __init__(self, op: LinearOperator, sigma: float = 0.0) -> None:
        super().__init__(img_size=tuple(op.x_shape), noise_model=GaussianNoise(sigma=sigma))
        self.op = op
        probe = torch.zeros((1, *op.x_shape), device=op.device, dtype=op.dtype)
        self.is_complex = op.A(probe).is_complex()
        self.centred = isinstance(op, MRI)

    # -- complex measurements in deepinv's layout ---------------------------------
    def _to_dinv(self, y: Tensor) -> Tensor:
        if not self.is_complex:
            return y
        if self.centred:
            y = torch.fft.fftshift(_kspace_phase(*y.shape[-2:], y) * y, dim=(-2, -1))
        return torch.cat([y.real, y.imag], dim=1)

    def _from_dinv(self, y: Tensor) -> Tensor:
        if not self.is_complex:
            return y
        c = self.op.y_shape[0]
        if y.is_complex() or y.shape[1] != 2 * c:
            raise OperatorError(
                f"{self.op.name}: deepinv measurements are real with the real and imaginary "
                f"parts as channels, shape (B, {2 * c}, ...); got {tuple(y.shape)} {y.dtype}"
            )
        z = torch.complex(y[:, :c], y[:, c:])
        if self.centred:
            z = _kspace_phase(*z.shape[-2:], z).conj() * torch.fft.ifftshift(z, dim=(-2, -1))
        return z

    # -- the physics ------------------------------------------------------------
    def A(self, x: Tensor, **kwargs) -> Tensor:
        """``A x`` in deepinv's layout."""
        return self._to_dinv(self.op.A(x))

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        """The exact adjoint ``Aᵀ y`` (a real image)."""
        return self.op.A_adjoint(self._from_dinv(y))

    def prox_l2(self, z: Tensor | float | None, y: Tensor, gamma: float | Tensor, **kwargs):
        """``argmin_x γ/2‖Ax − y‖² + ½‖x − z‖²`` in closed form (γ a number or one per item)."""
        y_op = self._from_dinv(y)
        if z is None or isinstance(z, (int, float)):
            fill = 0.0 if z is None else float(z)
            z = torch.full((y.shape[0], *self.op.x_shape), fill, device=y.device, dtype=y.dtype)
        if isinstance(gamma, Tensor):
            gamma = gamma.reshape(()) if gamma.numel() == 1 else gamma.reshape(-1)
        return self.op.prox_data(z, y_op, gamma)

    def A_dagger(self, y: Tensor, **kwargs) -> Tensor:
        """The pseudo-inverse ``A⁺ y``: the least-squares image nearest to 0."""
        x0 = torch.zeros((y.shape[0], *self.op.x_shape), device=y.device, dtype=y.dtype)
        return self.op.prox_data(x0, self._from_dinv(y), math.inf)

    def noise(self, x: Tensor, **kwargs) -> Tensor:
        """The noise model on the measured entries only (the rest stays exact)."""
        noisy = self.noise_model(x, **kwargs)
        mask = self.op.support()
        if mask is None:
            return noisy
        mask = mask.to(x.device)
        if self.centred:
            mask = torch.fft.fftshift(mask, dim=(-2, -1))
        return torch.where(mask, noisy, x)


def as_deepinv_physics(
    operator: str | LinearOperator,
    shape: tuple[int, int, int] | None = None,
    sigma: float = 0.0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> DEQPhysics:
    """An operator spec (``"deblur:sigma=2"``, ``"mri:rate=0.25"``) or a LinearOperator.

    Parameters
    ----------
    operator : str or LinearOperator
        A registry spec, built for ``shape``, or an operator already built.
    shape : (C, H, W), optional
        The image shape; needed with a spec, checked against a built operator.
    sigma : float
        Standard deviation of the measurement noise (deepinv's ``GaussianNoise``).
    device, dtype
        Where and in which precision a spec's operator is prepared first (it
        follows its inputs afterwards).

    Raises
    ------
    OperatorError
        A spec without ``shape``, or a shape that differs from the operator's.
    """
    if isinstance(operator, LinearOperator):
        if shape is not None and tuple(shape) != tuple(operator.x_shape):
            raise OperatorError(
                f"shape {tuple(shape)} differs from the operator's image shape "
                f"{tuple(operator.x_shape)}: leave shape out or build the operator for it"
            )
        op = operator
    else:
        if shape is None:
            raise OperatorError(
                f"as_deepinv_physics({operator!r}) needs the image shape: shape=(C, H, W)"
            )
        op = operators.build(operator, shape=tuple(shape), device=device, dtype=dtype)
    return DEQPhysics(op, sigma)
