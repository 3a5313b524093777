"""The built-in training modes as tasks: a loss on a batch of clean crops, and a validation.

- :class:`AWGNTask` — denoiser pretraining, MSE on ``x + σn``;
- :class:`DEQTask` — artifact-removal prior trained at the fixed point of a
  solver map (``deq``; :class:`MismatchedTask`, ``mismatched``, trains with A′
  and validates with A);
- :class:`MultiTask` — Algorithm 1 of the multi-task DEQ paper (FB, drawn
  degradations, MSE losses averaged over the draws);
- :class:`MCNetTask` — contractive layer and β behind a fixed backbone;
- :class:`BackboneTask` — a reconstruction network ``y ↦ x`` (e.g. SRCNN), MSE.

Every random choice comes from the generator the loop passes in, so a step is
reproducible from ``(seed, step, rank)``. Each task class is registered in
:data:`~deq_explorer.training.modes.modes` under its mode's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deq_explorer import metrics
from deq_explorer.deq import DEQ, DEQStats, Forward, Implicit, JacobianFree, mse_residual
from deq_explorer.deq.jacobian import jacobian_frobenius
from deq_explorer.fixedpoint.admm import mcnet_layer
from deq_explorer.fixedpoint.base import FixedPointMap, Status, StopRule
from deq_explorer.operators.base import LinearOperator
from deq_explorer.operators.noise import add_noise
from deq_explorer.priors.base import DenoiserPrior, Prior
from deq_explorer.priors.checkpoint import load_backbone
from deq_explorer.registry import accelerators, format_spec, operators, solvers
from deq_explorer.training.config import ConfigError, TrainConfig
from deq_explorer.training.data import generator
from deq_explorer.training.modes import mode, modes

__all__ = [
    "AWGNTask",
    "BackboneTask",
    "DEQTask",
    "MCNetTask",
    "MismatchedTask",
    "MultiTask",
    "StepLoss",
    "Task",
    "build_task",
]

Stop = Callable[[], bool] | None


@dataclass
class StepLoss:
    """A step's loss (``None`` when every draw was abandoned) and its DEQ iteration records."""

    loss: Tensor | None
    stats: list[DEQStats]
    abandoned: int = 0

    @property
    def fwd_iters(self) -> int:
        return sum(s.forward_iters for s in self.stats)

    @property
    def bwd_iters(self) -> int:
        return sum(s.backward_iters for s in self.stats)


class Task:
    """A training mode: trainable ``module`` (+ extra parameters), loss, validation.

    Attributes
    ----------
    arch : str
        Class attribute: the architecture trained when no base prior is given.
    role : str
        Class attribute: the role of the network it trains, ``"denoiser"`` (the
        checkpoint is a prior) or ``"backbone"`` (a reconstruction network).
    """

    arch: ClassVar[str] = "dncnn"
    role: ClassVar[str] = "denoiser"

    def __init__(self, config: TrainConfig, module: nn.Module, device: torch.device) -> None:
        self.config = config
        self.module = module.to(device=device, dtype=torch.float32)
        self.device = device
        self._ops: dict[tuple[Any, ...], LinearOperator] = {}

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        """Refuse a recipe this mode cannot train (``ConfigError``); called by ``TrainConfig``."""

    # -- what the loop uses --------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def loss(self, x: Tensor, g: torch.Generator, stop: Stop = None) -> StepLoss:
        raise NotImplementedError

    def validate(self, x: Tensor) -> tuple[float, float]:
        """Mean PSNR and SSIM of the reconstructions of the clean images ``x``."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimizer step (keeps spectral-norm estimates current)."""

    def extra_state(self) -> dict[str, Tensor]:
        """Trainable tensors outside ``module`` (saved in the sidecar)."""
        return {}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def metadata(self) -> dict[str, Any]:
        """Checkpoint metadata this mode adds (``sigma`` as a prior, solver hints ...)."""
        return {"sigma": self.prior_sigma}

    # -- helpers ---------------------------------------------------------------
    @property
    def prior_sigma(self) -> float:
        return max(self.config.prior_sigma, 0.0)

    def op(self, spec: str, shape: tuple[int, ...]) -> LinearOperator:
        """The operator ``spec`` for images of shape ``(C, H, W)`` (cached)."""
        key = (spec, tuple(shape))
        if key not in self._ops:
            self._ops[key] = operators.build(
                spec, shape=tuple(shape), device=self.device, dtype=torch.float32
            )
        return self._ops[key]

    def draw_sigma(self, g: torch.Generator, n: int) -> Tensor:
        """``n`` noise levels from the list (uniform choice) or the range (uniform)."""
        c = self.config
        if c.noise_range:
            lo, hi = c.noise_range
            return lo + (hi - lo) * torch.rand(n, generator=g)
        idx = torch.randint(0, len(c.noise), (n,), generator=g)
        return torch.tensor(c.noise, dtype=torch.float32)[idx]

    @property
    def val_sigma(self) -> float:
        c = self.config
        return 0.5 * sum(c.noise_range) if c.noise_range else c.noise[0]


def _scores(x: Tensor, ref: Tensor) -> tuple[float, float]:
    x = x.clamp(0, 1)
    return metrics.psnr(x, ref), metrics.ssim(x, ref)


class AWGNTask(Task):
    """Denoiser pretraining: ``‖D(x + σn, σ) − x‖²`` averaged over pixels (MSE)."""

    def __init__(self, config: TrainConfig, module: nn.Module, device: torch.device) -> None:
        super().__init__(config, module, device)
        self.module.train()

    @property
    def prior_sigma(self) -> float:
        return self.config.prior_sigma if self.config.prior_sigma >= 0 else self.val_sigma

    def loss(self, x: Tensor, g: torch.Generator, stop: Stop = None) -> StepLoss:
        sigma = self.draw_sigma(g, x.shape[0])
        n = torch.randn(x.shape, generator=g).to(x.device)
        s = sigma.to(x.device)
        out = self.module(x + s.view(-1, 1, 1, 1) * n, s)
        return StepLoss(F.mse_loss(out, x), [])

    def validate(self, x: Tensor) -> tuple[float, float]:
        g = generator(self.config.seed, -2)
        noisy = add_noise(x, self.val_sigma, g)
        self.module.eval()
        try:
            with torch.no_grad():
                out = self.module(noisy, self.val_sigma)
        finally:
            self.module.train()
        return _scores(out, x)

    def metadata(self) -> dict[str, Any]:
        c = self.config
        levels = list(c.noise_range) if c.noise_range else list(c.noise)
        return {"sigma": self.prior_sigma, "noise_levels": levels}


class _FixedPointTask(Task):
    """Shared by the DEQ modes: network in eval mode (a fixed map per step), a DEQ layer."""

    def __init__(self, config: TrainConfig, module: nn.Module, device: torch.device) -> None:
        super().__init__(config, module, device)
        self.module.eval()  # batch-norm statistics and spectral-norm probes stay fixed in a solve
        self.prior: Prior = DenoiserPrior(self.module, self.prior_sigma, name="training")
        acc = accelerators.build(config.accel)
        back_acc = accelerators.build(config.backward_accel) if config.backward_accel else acc
        backward = (
            Implicit(
                accelerator=back_acc,
                rule=StopRule(max_iter=config.backward_max_iter, tol=config.backward_tol),
            )
            if config.backward == "implicit"
            else JacobianFree()
        )
        self.deq = DEQ(forward=self.forward_rule(acc), backward=backward)

    def forward_rule(self, acc: Any) -> Forward:
        return Forward(
            accelerator=acc, rule=StopRule(max_iter=self.config.max_iter, tol=self.config.tol)
        )

    def after_step(self) -> None:
        refresh = getattr(self.module, "refresh", None)
        if callable(refresh):
            refresh(1)  # one power-iteration step per update, as in training mode

    def measure(self, op: LinearOperator, x: Tensor, sigma: float, g: torch.Generator) -> Tensor:
        return add_noise(op.A(x), sigma, g)


def _needs_operators(config: TrainConfig) -> None:
    if not config.operators:
        raise ConfigError(f"mode {config.mode!r} needs at least one training operator")


class DEQTask(_FixedPointTask):
    """DEQ fine-tuning: loss ``½‖x̄ − x‖²`` per image at the fixed point ``x̄`` of the solver map."""

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        _needs_operators(config)

    def fp_map(self, op: LinearOperator, y: Tensor) -> FixedPointMap:
        return solvers.build(self.config.solver, op=op, prior=self.prior, y=y)

    def loss(self, x: Tensor, g: torch.Generator, stop: Stop = None) -> StepLoss:
        c = self.config
        spec = c.operators[int(torch.randint(0, len(c.operators), (1,), generator=g))]
        op = self.op(spec, tuple(x.shape[1:]))
        y = self.measure(op, x, float(self.draw_sigma(g, 1)), g)
        fp = self.fp_map(op, y)
        z, stats = self.deq(fp, stop=stop)
        err = fp.image(z) - x
        loss = 0.5 * err.pow(2).flatten(1).sum(1).mean()
        if c.jacobian_weight > 0:  # keeps T contractive at z* (short, stable solves)
            loss = loss + c.jacobian_weight * jacobian_frobenius(fp.T, z, g)
        return StepLoss(loss, [stats])

    def validate(self, x: Tensor) -> tuple[float, float]:
        op = self.op(self.config.eval_spec, tuple(x.shape[1:]))
        y = self.measure(op, x, self.val_sigma, generator(self.config.seed, -3))
        fp = self.fp_map(op, y)
        with torch.no_grad():
            z, _ = self.deq(fp)
        return _scores(fp.image(z), x)

    def metadata(self) -> dict[str, Any]:
        c = self.config
        return {
            "sigma": self.prior_sigma,
            "operators": list(c.operators),
            "eval_operator": c.eval_spec,
            "noise_levels": list(c.noise_range or c.noise),
            **self.solve_settings(),
        }

    def solve_settings(self) -> dict[str, Any]:
        """What a solve with the trained prior should use (the training's forward solve)."""
        c = self.config
        return {"solver": solvers.resolve(c.solver), "accel": c.accel, "tol": c.tol}


class MismatchedTask(DEQTask):
    """DEQ fine-tuning with the operators A′, validated with another operator A."""

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        _needs_operators(config)
        if not config.eval_operator or config.eval_operator in config.operators:
            raise ConfigError(
                "mode 'mismatched' trains with the operators A′ and validates with eval_operator "
                "A: set eval_operator to an operator spec that differs from the training ones"
            )


@dataclass(frozen=True)
class Degradation:
    """One multi-task draw: an operator (registry name and typed options) and a noise level."""

    operator: str
    options: dict[str, Any]
    sigma: float


class MultiTask(_FixedPointTask):
    """Multi-task DEQ (Algorithm 1): N drawn degradations per batch, FB map, averaged MSE.

    Each draw applies one operator and noise level to the whole batch of
    crops (with ``batch = 1`` exactly the paper's per-image draws). A draw
    whose iterate exceeds ``abandon_at`` is dropped from the average.
    """

    arch = "unet"

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        bad = [s for s in config.multitask.sr_scales if config.crop % s or config.val_crop % s]
        if bad:
            raise ConfigError(
                f"crop {config.crop} and val_crop {config.val_crop} must be divisible by every SR "
                f"scale; not by {bad}: use e.g. crop 48 or 96, or drop those scales"
            )

    def forward_rule(self, acc: Any) -> Forward:
        mt = self.config.multitask
        rule = StopRule(max_iter=mt.max_iter, tol=mt.tol, diverge_at=mt.abandon_at)
        return Forward(accelerator=acc, rule=rule, residual=mse_residual)

    def family(self) -> list[tuple[str, dict[str, Any]]]:
        """The degradations drawn from: ``(operator name, options)``."""
        mt = self.config.multitask
        out = [("denoise", {}) if s == 1 else ("sr-bicubic", {"scale": s}) for s in mt.sr_scales]
        out += [("deblur", {"sigma": b}) for b in mt.blur_sigmas]
        out += [("inpaint", {"p": p}) for p in mt.drop_rates]
        return out

    def draw(self, g: torch.Generator) -> Degradation:
        """One degradation; an operator with a ``seed`` option (a random mask) gets a new one."""
        family, levels = self.family(), self.config.multitask.noise_levels
        name, options = family[int(torch.randint(0, len(family), (1,), generator=g))]
        if "seed" in operators.entry(name).options():
            options = {**options, "seed": int(torch.randint(0, 2**31 - 1, (1,), generator=g))}
        sigma = levels[int(torch.randint(0, len(levels), (1,), generator=g))]
        return Degradation(name, options, float(sigma))

    def operator(self, d: Degradation, shape: tuple[int, ...]) -> LinearOperator:
        """The draw's operator for images of ``shape``; cached unless it carries a fresh seed."""
        key = (d.operator, tuple(d.options.items()), shape)
        if key in self._ops:
            return self._ops[key]
        op = operators.create(
            d.operator, shape=shape, device=self.device, dtype=torch.float32, **d.options
        )
        if "seed" not in d.options:  # a seeded draw is a new random mask: not kept
            self._ops[key] = op
        return op

    def solve(self, d: Degradation, x: Tensor, g: torch.Generator, grad: bool, stop: Stop = None):
        op = self.operator(d, tuple(x.shape[1:]))
        y = self.measure(op, x, d.sigma, g)
        z0 = y if y.shape == x.shape else F.interpolate(y, size=x.shape[-2:], mode="bilinear")
        eta = self.config.multitask.eta
        fp = solvers.create("fb", op=op, prior=self.prior, y=y, w=z0, eta=eta, sigma=eta * d.sigma)
        with torch.set_grad_enabled(grad):
            z, stats = self.deq(fp, stop=stop)
        return fp.image(z), stats

    def loss(self, x: Tensor, g: torch.Generator, stop: Stop = None) -> StepLoss:
        losses, all_stats, abandoned = [], [], 0
        for _ in range(self.config.multitask.draws):
            x_bar, stats = self.solve(self.draw(g), x, g, grad=True, stop=stop)
            all_stats.append(stats)
            if stats.forward_status is Status.DIVERGED:
                abandoned += 1
                continue
            losses.append(F.mse_loss(x_bar, x))
        loss = torch.stack(losses).mean() if losses else None
        return StepLoss(loss, all_stats, abandoned)

    def validate(self, x: Tensor) -> tuple[float, float]:
        g = generator(self.config.seed, -4)
        draws = [self.draw(g) for _ in range(self.config.multitask.draws)]
        scores = []
        for d in draws:
            x_bar, stats = self.solve(d, x, g, grad=False)
            if stats.forward_status is not Status.DIVERGED:
                scores.append(_scores(x_bar, x))
        if not scores:
            return math.nan, math.nan
        return tuple(sum(s) / len(scores) for s in zip(*scores, strict=False))  # type: ignore[return-value]

    def metadata(self) -> dict[str, Any]:
        mt = self.config.multitask
        return {
            "sigma": self.prior_sigma,
            "operators": [format_spec(name, options) for name, options in self.family()],
            "noise_levels": list(mt.noise_levels),
            "solver": solvers.resolve(format_spec("fb", {"eta": mt.eta})),
            "accel": "none",
        }


class MCNetTask(DEQTask):
    """MCNet: the contractive layer and ``β = exp(log β)`` trained behind a fixed backbone.

    The backbone is ``backbone`` or else the recipe's ``mcnet.backbone`` checkpoint
    (none: the operator's ``init(y)``).
    """

    arch = "sn-dncnn"

    def __init__(
        self,
        config: TrainConfig,
        module: nn.Module,
        device: torch.device,
        backbone: nn.Module | None = None,
    ) -> None:
        super().__init__(config, module, device)
        self.log_beta = nn.Parameter(torch.tensor(math.log(config.mcnet.beta), device=device))
        if backbone is None and config.mcnet.backbone:
            backbone = load_backbone(config.mcnet.backbone)[0].float()
        self.backbone = backbone.to(device).eval().requires_grad_(False) if backbone else None

    def parameters(self) -> list[nn.Parameter]:
        return [*super().parameters(), self.log_beta]

    @property
    def beta(self) -> float:
        return float(self.log_beta.detach().exp())

    def fp_map(self, op: LinearOperator, y: Tensor) -> FixedPointMap:
        with torch.no_grad():
            w = self.backbone(y) if self.backbone is not None else op.init(y)
        m = self.config.mcnet
        return mcnet_layer(op, self.prior, y, w, beta=self.log_beta.exp(), rho=m.rho, eps=m.eps)

    def extra_state(self) -> dict[str, Tensor]:
        return {"log_beta": self.log_beta.detach().cpu()}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            self.log_beta.copy_(state["log_beta"])

    def metadata(self) -> dict[str, Any]:
        m = self.config.mcnet
        return {
            **super().metadata(),
            "beta": self.beta,
            "solver": solvers.resolve(
                format_spec("mcnet-admm", {"eps": m.eps, "beta": self.beta, "rho": m.rho})
            ),
            "backbone": m.backbone,
        }


class BackboneTask(Task):
    """A direct reconstruction network (MCNet's backbone): ``‖N(Ax + σn) − x‖²`` (MSE)."""

    arch = "srcnn"
    role = "backbone"

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        _needs_operators(config)

    def __init__(self, config: TrainConfig, module: nn.Module, device: torch.device) -> None:
        super().__init__(config, module, device)
        self.module.train()

    def reconstruct(self, spec: str, x: Tensor, sigma: float, g: torch.Generator) -> Tensor:
        op = self.op(spec, tuple(x.shape[1:]))
        out = self.module(add_noise(op.A(x), sigma, g))
        if out.shape != x.shape:
            raise ConfigError(
                f"the network maps the measurements of {spec!r} to {tuple(out.shape[1:])}, not to "
                f"the image shape {tuple(x.shape[1:])}: match its scale to the operator's"
            )
        return out

    def loss(self, x: Tensor, g: torch.Generator, stop: Stop = None) -> StepLoss:
        c = self.config
        spec = c.operators[int(torch.randint(0, len(c.operators), (1,), generator=g))]
        out = self.reconstruct(spec, x, float(self.draw_sigma(g, 1)), g)
        return StepLoss(F.mse_loss(out, x), [])

    def validate(self, x: Tensor) -> tuple[float, float]:
        self.module.eval()
        try:
            with torch.no_grad():
                g = generator(self.config.seed, -5)
                out = self.reconstruct(self.config.eval_spec, x, self.val_sigma, g)
        finally:
            self.module.train()
        return _scores(out, x)

    def metadata(self) -> dict[str, Any]:
        c = self.config
        return {
            "operators": list(c.operators),
            "eval_operator": c.eval_spec,
            "noise_levels": list(c.noise_range or c.noise),
        }


def build_task(config: TrainConfig, module: nn.Module, device: torch.device) -> Task:
    """The task of ``config.mode`` (its registered class) around ``module``."""
    return mode(config.mode)(config, module, device)


_BUILTIN = {"awgn": AWGNTask, "deq": DEQTask, "mismatched": MismatchedTask,
            "multitask": MultiTask, "mcnet": MCNetTask, "backbone": BackboneTask}  # fmt: skip
for _name, _task in _BUILTIN.items():
    # "builtin" even when a pack's hook is what first imports the training package
    modes.register(_name, _task, source="builtin")
