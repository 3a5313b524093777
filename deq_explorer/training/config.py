"""The training recipe: frozen dataclasses, checked on construction, loadable from TOML.

Every field carries a one-line ``help`` in its metadata; the CLI builds its
flags from these fields, so the recipe, the TOML keys and the flags never
drift apart. The mode's own rules are its task's ``check``
(:mod:`deq_explorer.training.modes`).
"""

from __future__ import annotations

import dataclasses
import math
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deq_explorer.checks import non_negative, positive
from deq_explorer.errors import ConfigError
from deq_explorer.registry import SpecError
from deq_explorer.training.modes import mode, modes

__all__ = ["ConfigError", "MCNetConfig", "MultiTaskConfig", "TrainConfig"]

BACKWARDS = ("implicit", "jfb")
#: σ ∈ {1, 2, 3, 5, 7, 8, 10, 12, 15}/255 of the first seed paper's AWGN DnCNNs
PAPER_AWGN_LEVELS = tuple(s / 255 for s in (1, 2, 3, 5, 7, 8, 10, 12, 15))


def __getattr__(name: str) -> Any:
    if name == "MODES":  # deprecated: the names of the mode registry, which packs extend
        warnings.warn(
            "MODES is deprecated; use deq_explorer.training.modes.modes.names()",
            DeprecationWarning,
            stacklevel=2,
        )
        return tuple(modes.names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class MultiTaskConfig:
    """Algorithm 1 of the multi-task DEQ paper: degradations drawn per step, FB, JFB."""

    draws: int = _f(5, "degradations N drawn per clean crop batch; their losses are averaged")
    sr_scales: tuple[int, ...] = _f((1, 2, 3, 4), "bicubic SR factors (1 = pure denoising)")
    blur_sigmas: tuple[float, ...] = _f((0.4, 0.8, 1.2, 1.6, 2.0, 2.4), "Gaussian blur σ")
    drop_rates: tuple[float, ...] = _f((0.2, 0.4, 0.5, 0.6, 0.8, 0.9), "pixel-drop probabilities")
    noise_levels: tuple[float, ...] = _f(
        tuple(round(0.005 * s, 3) for s in range(50)), "noise σ of the draws (0.005·s, s<50)"
    )
    eta: float = _f(0.49, "FB step η; the denoiser gets the noise input η·σ")
    tol: float = _f(1e-7, "stop when the MSE between iterates falls below this")
    max_iter: int = _f(350, "iteration cap of the forward FB solve")
    abandon_at: float = _f(1e10, "drop a draw whose iterate exceeds this magnitude")

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise ConfigError(f"multitask draws must be ≥ 1; got {self.draws}")
        if not (self.sr_scales or self.blur_sigmas or self.drop_rates):
            raise ConfigError(
                "multitask needs at least one family: sr_scales, blur_sigmas or drop_rates"
            )
        if any(s < 1 for s in self.sr_scales):
            raise ConfigError(f"multitask sr_scales must be ≥ 1; got {self.sr_scales}")
        if any(not 0 <= p < 1 for p in self.drop_rates):
            raise ConfigError(f"multitask drop_rates must lie in [0, 1); got {self.drop_rates}")
        if any(s <= 0 for s in self.blur_sigmas):
            raise ConfigError(f"multitask blur_sigmas must be > 0; got {self.blur_sigmas}")
        if not self.noise_levels or any(s < 0 for s in self.noise_levels):
            raise ConfigError(f"multitask noise_levels must be ≥ 0; got {self.noise_levels}")
        for name in ("eta", "tol", "max_iter", "abandon_at"):
            positive(getattr(self, name), name, error=ConfigError)


@dataclass(frozen=True, kw_only=True)
class MCNetConfig:
    """MCNet: a contractive layer and a learnable β behind a fixed SR backbone."""

    backbone: str = _f(
        "", "backbone checkpoint or shipped backbone name (e.g. srcnn-x2); empty: init(y)"
    )
    eps: float = _f(0.0, "radius ε of the consistency set ‖Ax − y‖ ≤ ε")
    beta: float = _f(1.0, "initial β (learned, kept positive through log β)")
    rho: float = _f(1.0, "augmented-Lagrangian ρ")

    def __post_init__(self) -> None:
        non_negative(self.eps, "mcnet eps", error=ConfigError)
        positive(self.beta, "beta", error=ConfigError)
        positive(self.rho, "rho", error=ConfigError)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run (all modes); see ``deq-explorer train --help``.

    ``operators`` are the training operators (one is drawn per step); the
    validation operator is ``eval_operator`` (default: the first training
    operator), which is what makes the ``mismatched`` mode.
    """

    mode: str = _f(
        "deq", "training mode (built in: awgn, deq, mismatched, multitask, mcnet, backbone)"
    )
    prior: str = _f("", "base checkpoint (path or registered prior name) to start from")
    arch: str = _f("", "network when no base prior is given (default: the mode's own)")
    net: dict = field(
        default_factory=dict,
        metadata={"help": 'architecture options as JSON, e.g. {"depth": 8, "width": 32}'},
    )
    channels: int = _f(1, "image channels (1 gray, 3 colour)")
    prior_sigma: float = _f(-1.0, "noise level fed to the denoiser in DEQ modes (<0: base's)")
    operators: tuple[str, ...] = _f(("denoise",), "training operator spec(s)")
    eval_operator: str = _f("", "validation operator spec (default: the first operator)")
    noise: tuple[float, ...] = _f((0.01,), "noise levels σ (one drawn per image)")
    noise_range: tuple[float, ...] = _f((), "σ drawn uniformly in [lo, hi] instead of a list")
    solver: str = _f("pnp-pgm", "solver spec of the DEQ forward map")
    accel: str = _f("anderson:m=5", "accelerator spec of the forward solve")
    max_iter: int = _f(100, "forward iteration cap")
    tol: float = _f(1e-4, "forward tolerance on the relative residual")
    backward: str = _f("implicit", "implicit | jfb")
    backward_accel: str = _f("", "accelerator of the implicit backward solve (default: accel)")
    backward_max_iter: int = _f(100, "backward iteration cap")
    backward_tol: float = _f(1e-5, "backward tolerance on the relative residual")
    jacobian_weight: float = _f(
        0.0,
        "weight of the Hutchinson estimate of ‖∂T/∂z‖_F²/n added to the loss "
        "(deq, mismatched, mcnet; 0: off)",
    )
    data: str = _f(
        "builtin",
        "'builtin' photos, 'mni152' MRI slices ([mri] extra), a folder of images and/or "
        ".nii(.gz) volumes, or a volume file; join several with '+'",
    )
    crop: int = _f(64, "side of the random training crops (volume slices are zero-padded to it)")
    augment_gamma: float = _f(0.0, "intensity augmentation x^g, log g uniform in ±this (0: off)")
    batch: int = _f(4, "crops per step (per process)")
    steps: int = _f(100, "optimizer steps (ignored when epochs > 0)")
    epochs: int = _f(0, "passes over the training images (0: use steps)")
    lr: float = _f(1e-4, "Adam learning rate")
    milestones: tuple[int, ...] = _f((), "steps at which the learning rate is multiplied by gamma")
    gamma: float = _f(0.5, "learning-rate factor at each milestone")
    val_images: int = _f(2, "held-out validation images")
    val_every: int = _f(50, "validate every this many steps (and at the end)")
    val_crop: int = _f(96, "side of the centre crop of each validation image")
    out: str = _f("prior.safetensors", "checkpoint to write")
    checkpoint_every: int = _f(
        0, "also write the checkpoint every this many steps (0: only at end)"
    )
    resume: str = _f("", "checkpoint written by train to continue from (it holds its own state)")
    name: str = _f("", "prior name to register the result under (default: file stem)")
    seed: int = _f(0, "seed of crops, noise and degradations")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    multitask: MultiTaskConfig = field(
        default_factory=MultiTaskConfig, metadata={"help": "multi-task DEQ options"}
    )
    mcnet: MCNetConfig = field(default_factory=MCNetConfig, metadata={"help": "MCNet options"})

    def __post_init__(self) -> None:
        try:
            task = mode(self.mode)
        except SpecError as exc:
            raise ConfigError(str(exc)) from None
        if self.backward not in BACKWARDS:
            raise ConfigError(f"unknown backward rule {self.backward!r}; choose implicit or jfb")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (gray) or 3 (colour); got {self.channels}")
        if not isinstance(self.net, dict):
            raise ConfigError(f"net must be a dict of architecture options; got {self.net!r}")
        for name in ("crop", "batch", "lr", "gamma", "max_iter", "backward_max_iter",
                     "val_crop", "val_every"):  # fmt: skip
            positive(getattr(self, name), name, error=ConfigError)
        for name in ("steps", "epochs", "val_images", "checkpoint_every", "seed",
                     "augment_gamma", "jacobian_weight"):  # fmt: skip
            non_negative(getattr(self, name), name, error=ConfigError)
        if self.steps == 0 and self.epochs == 0:
            raise ConfigError("set steps > 0 or epochs > 0")
        if any(s < 0 or not math.isfinite(s) for s in self.noise):
            raise ConfigError(f"noise levels must be finite and ≥ 0; got {self.noise}")
        if self.noise_range:
            lo_hi = self.noise_range
            if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1]:
                raise ConfigError(f"noise_range must be [lo, hi] with 0 ≤ lo ≤ hi; got {lo_hi}")
        elif not self.noise:
            raise ConfigError("give noise levels (noise) or a noise_range")
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"milestones must increase; got {self.milestones}")
        if not self.out.endswith(".safetensors"):
            raise ConfigError(f"out must be a .safetensors path; got {self.out!r}")
        task.check(self)

    # -- conversions ---------------------------------------------------------
    @property
    def eval_spec(self) -> str:
        """The validation operator spec."""
        return self.eval_operator or (self.operators[0] if self.operators else "denoise")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a (TOML/JSON) mapping; unknown keys raise :class:`ConfigError`."""
        return _build(cls, values, "")

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        """Read a TOML recipe: top-level keys are fields, ``[multitask]``/``[mcnet]`` tables."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ModuleNotFoundError:
                raise ConfigError(
                    "reading TOML needs Python ≥ 3.11 (tomllib) or `pip install tomli`"
                ) from None
        path = Path(path)
        try:
            with path.open("rb") as f:
                values = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"no config file at {str(path)!r}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {str(path)!r} is not valid TOML: {exc}") from None
        return cls.from_dict(values)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a config dataclass."""
    return typing.get_type_hints(cls)


def _coerce(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    try:
        if origin is tuple:
            (item,) = {a for a in typing.get_args(kind) if a is not Ellipsis}
            items = value if isinstance(value, (list, tuple)) else [value]
            return tuple(_coerce(x, item, where) for x in items)
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind in (int, str, dict) and isinstance(value, kind) and not isinstance(value, bool):
            return value
    except (ValueError, TypeError):
        pass
    name = getattr(kind, "__name__", str(kind))
    raise ConfigError(f"{where}: expected {name}; got {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'} must be a table of options; got {values!r}")
    kinds = field_types(cls)
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(prefix + k for k in unknown)}; "
            f"known: {', '.join(prefix + k for k in kinds)}"
        )
    out = {}
    for key, value in values.items():
        kind = kinds[key]
        if dataclasses.is_dataclass(kind):
            out[key] = _build(kind, value, f"{prefix}{key}.")
        else:
            out[key] = _coerce(value, kind, prefix + key)
    return cls(**out)
