"""Checkpoints: weights plus a metadata record, loaded without executing code.

The one format is a safetensors file (``.safetensors``): the tensors of the
network's ``state_dict`` and, in the header's metadata, a JSON record under
the key ``"deq_explorer"`` (architecture, its config, training mode and
recipe, operators and noise levels, data, steps, metrics, package version,
creation time) plus, under ``"digest"``, a SHA-256 digest over the metadata
record *and* the tensors. A file without that digest (DEQ Explorer 0.1 wrote
one over the tensors only; foreign tools write none) is refused unless the
caller opts in with ``trust=True`` (or ``DEQ_EXPLORER_TRUST_CHECKPOINTS=1`` for
the CLI and GUI); a digest that does not match is refused always.

Nothing in the file is ever run, and nothing is built from it before it is
checked: the architecture *name* must be registered, every integer option of
its config must lie within :data:`MAX_CONFIG_INT`, and the network is first
built on the ``meta`` device (no memory) to compare its parameter shapes with
the tensors in the file; only then is the real network built
(:func:`~deq_explorer.priors.nets.build_net`). Legacy ``.pt`` files are read
only through ``torch.load(weights_only=True)``, must hold
``{"state_dict", "metadata"}``, and carry no digest (so they need ``trust``).

Metadata keys understood by the loaders: ``architecture`` and ``config``
(always written from the module), ``name`` (default registry name),
``sigma`` (default noise level fed to the denoiser when used as a prior),
``package_version`` and ``created`` (written on save). Training adds
``mode``, ``recipe``, ``operators``, ``noise_levels``, ``data``, ``steps``,
``metrics`` and anything else JSON-serialisable.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from deq_explorer.atomic import atomic_write
from deq_explorer.errors import CheckpointError
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.nets import architecture_of, architectures, build_net
from deq_explorer.registry import Meta
from deq_explorer.registry import priors as prior_registry
from deq_explorer.scale import Scale

__all__ = [
    "BACKBONE_DIR",
    "MAX_CONFIG_INT",
    "SHIPPED_DIR",
    "CheckpointError",
    "CheckpointPrior",
    "backbone_names",
    "load_backbone",
    "load_checkpoint",
    "load_prior",
    "load_state",
    "read_metadata",
    "register_checkpoint",
    "register_shipped",
    "register_user_priors",
    "save_checkpoint",
    "user_dir",
]

SHIPPED_DIR = Path(__file__).parent / "shipped"
#: trained reconstruction networks (MCNet backbones), loaded by name with :func:`load_backbone`
BACKBONE_DIR = SHIPPED_DIR / "backbones"
_META_KEY = "deq_explorer"
_DIGEST_KEY = "digest"  # "sha256:<hex>" over the metadata record and the tensors
_LEGACY_DIGEST_KEY = "sha256"  # 0.1: over the tensors only, so the metadata went unchecked
_TRUST_ENV = "DEQ_EXPLORER_TRUST_CHECKPOINTS"
_STATE_PREFIX = "state/"  # tensors beside the weights (training state), not the network's
#: the largest integer accepted anywhere in an architecture's config (width, depth, ...)
MAX_CONFIG_INT = 4096
#: the option every checkpoint prior takes
Sigma = Annotated[float, Meta("noise level σ given to the denoiser", "[0, inf)")]


class CheckpointPrior(DenoiserPrior):
    """A :class:`DenoiserPrior` around a trained network loaded from a checkpoint.

    Attributes
    ----------
    metadata : dict
        The checkpoint's metadata record.
    path : Path
        The file it was loaded from.
    """

    def __init__(
        self, module: nn.Module, sigma: float, name: str, metadata: dict[str, Any], path: Path
    ) -> None:
        super().__init__(module, sigma, name)
        self.metadata = metadata
        self.path = path


def _package_version() -> str:
    try:
        return version("deq-explorer")
    except PackageNotFoundError:
        return "unknown"


def _trusted(trust: bool | None) -> bool:
    """``trust``, or when it is None the opt-in of the environment (CLI and GUI)."""
    if trust is not None:
        return trust
    return os.environ.get(_TRUST_ENV, "").strip().lower() in {"1", "true", "yes"}


def _digest(record: str, tensors: dict[str, Tensor]) -> str:
    """``"sha256:<hex>"`` over the metadata text, then names, dtypes, shapes, bytes of tensors."""
    h = hashlib.sha256()
    h.update(record.encode())
    h.update(b"\0")
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


def save_checkpoint(
    path: str | Path,
    module: nn.Module,
    metadata: dict[str, Any],
    state: dict[str, Tensor] | None = None,
) -> Path:
    """Write ``module``'s weights and ``metadata`` to a ``.safetensors`` file atomically.

    The file is written to a temporary file in the same folder and moved into
    place with :func:`os.replace`, so readers see the old file or the new one,
    never half of one. ``architecture``, ``config``, ``package_version`` and
    ``created`` are filled in from the module and the environment.

    Parameters
    ----------
    path : str or Path
        Destination ending in ``.safetensors``; its folder is created if needed.
    module : nn.Module
        A network of :data:`~deq_explorer.priors.nets.architectures`.
    metadata : dict
        JSON-serialisable facts about the training (see the module docstring).
    state : dict of str to Tensor, optional
        Further tensors stored in the same file under ``"state/<name>"`` (a
        training run's optimizer state, so that weights and the state to
        resume them commit as one unit); :func:`load_state` reads them back and
        :func:`load_checkpoint` ignores them.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoints are written as .safetensors files; got {path.name!r}")
    record = {
        **metadata,
        "architecture": architecture_of(module),
        "config": module.config(),
        "package_version": _package_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        text = json.dumps(record)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint metadata is not JSON-serialisable ({exc}); use numbers, strings, "
            "lists and dicts"
        ) from None
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    for k, v in (state or {}).items():
        tensors[_STATE_PREFIX + k] = v.detach().to("cpu").contiguous().clone()
    data = safetensors_bytes(
        tensors, metadata={_META_KEY: text, _DIGEST_KEY: _digest(text, tensors)}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(data)
    return path


def _header(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors header (no tensors are read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted or truncated ({exc}); re-save it from the "
            "original, or retrain it"
        ) from None


def _record(path: Path, header: dict[str, str]) -> dict[str, Any]:
    if _META_KEY not in header:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a DEQ Explorer checkpoint: its header "
            f"has no {_META_KEY!r} metadata record. To use foreign weights, build the network "
            "(deq_explorer.priors.nets.build_net), load them into it, and write it with "
            "save_checkpoint(path, module, metadata)"
        )
    try:
        metadata = json.loads(header[_META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: its metadata record is not valid JSON "
            f"({exc}); the header was edited or damaged. Re-save the checkpoint from the "
            "original, or retrain it"
        ) from None
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: its metadata record is not a JSON object"
        )
    return metadata


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata record of a ``.safetensors`` checkpoint, from its header only.

    Cheap (no tensors are read) and *unverified*: the digest is checked when the
    checkpoint is loaded (:func:`load_checkpoint`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {str(path)!r}")
    return _record(path, _header(path))


def _read_safetensors(path: Path, trust: bool) -> tuple[dict[str, Tensor], dict[str, Any]]:
    header = _header(path)
    metadata = _record(path, header)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted or truncated ({exc}); re-save it from the "
            "original, or retrain it"
        ) from None
    digest = header.get(_DIGEST_KEY)
    if digest is None and not trust:
        why = (
            "it was written by DEQ Explorer 0.1, whose digest covers the weights only"
            if _LEGACY_DIGEST_KEY in header
            else "its header has no digest (edited, or written by another tool)"
        )
        raise CheckpointError(
            f"refused to load {str(path)!r}: {why}, so neither its weights nor its metadata can "
            f"be verified. If you trust where it came from, load it with trust=True (CLI and "
            f"GUI: set {_TRUST_ENV}=1) and re-save it with save_checkpoint to add a digest"
        )
    if digest is not None and digest != _digest(header[_META_KEY], tensors):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: its weights or metadata do not match the "
            "digest stored in its header (edited or damaged); re-save it from the original, or "
            "retrain it"
        )
    return tensors, metadata


def _read_pt(path: Path, trust: bool) -> tuple[dict[str, Tensor], dict[str, Any]]:
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own message advises weights_only=False; pass on only the reason
        found = re.search(r"Unsupported (global: GLOBAL [\w.]+|operand \d+|[^\n.]+)", str(exc))
        detail = found.group(0) if found else "unreadable pickle data"
        if "GLOBAL" in detail:
            raise CheckpointError(
                f"refused to load {str(path)!r}: it asks to import a Python object while "
                f"unpickling ({detail}), which can run code. Only tensors and plain containers "
                "are read (weights_only), so nothing from the file was executed. Re-save trusted "
                "weights with save_checkpoint."
            ) from None
        raise CheckpointError(
            f"refused to load {str(path)!r}: it is corrupted, or not a weights-only checkpoint "
            f"({detail}). Nothing from the file was executed. Re-save it with save_checkpoint."
        ) from None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted or truncated ({first}); re-save it"
        ) from None
    ok = (
        isinstance(obj, dict)
        and isinstance(obj.get("state_dict"), dict)
        and isinstance(obj.get("metadata"), dict)
        and all(isinstance(v, Tensor) for v in obj["state_dict"].values())
    )
    if not ok:
        raise CheckpointError(
            f"{str(path)!r} is not a DEQ Explorer checkpoint: a .pt file must hold a dict "
            '{"state_dict": {name: tensor}, "metadata": {...}}'
        )
    if not trust:
        raise CheckpointError(
            f"refused to load {str(path)!r}: a .pt checkpoint carries no digest, so neither its "
            f"weights nor its metadata can be verified. If you trust where it came from, load "
            f"it with trust=True (CLI and GUI: set {_TRUST_ENV}=1) and re-save it with "
            "save_checkpoint as a .safetensors file"
        )
    return dict(obj["state_dict"]), dict(obj["metadata"])


def _ints(value: Any, key: str = "") -> Iterator[tuple[str, int]]:
    """Every integer in a (nested) config, with its key."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _ints(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _ints(v, key)


def _check_shapes(
    path: Path, arch: str, config: dict, expected: dict[str, Tensor], tensors: dict[str, Tensor]
) -> None:
    """Refuse tensors whose names or shapes differ from the network ``config`` describes."""
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [
        f"{k}: {tuple(tensors[k].shape)} in the file, {tuple(v.shape)} in the network"
        for k, v in expected.items()
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)
    ]
    if problems:
        more = f"; ... ({len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r}: the weights do not fit {arch!r} with config {config} "
            f"(size mismatch): {'; '.join(problems[:3])}{more}. Nothing was built; the header "
            "does not describe these weights"
        )


def _architecture(path: Path, metadata: dict[str, Any]) -> str:
    """The registered architecture a checkpoint's record names, or a CheckpointError."""
    arch = metadata.get("architecture")
    if not isinstance(arch, str) or arch not in architectures:
        known = ", ".join(architectures.names())
        raise CheckpointError(
            f"checkpoint {str(path)!r} names unknown architecture {arch!r}; known: {known} "
            "(was it written by a newer DEQ Explorer or a plugin that is not installed?)"
        )
    return arch


def _rebuild(path: Path, tensors: dict[str, Tensor], metadata: dict[str, Any]) -> nn.Module:
    arch = _architecture(path, metadata)
    config = metadata.get("config", {})
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {str(path)!r}: 'config' must be a dict; got {config!r}")
    too_big = [f"{k}={v}" for k, v in _ints(config) if abs(v) > MAX_CONFIG_INT]
    if too_big:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: its {arch!r} config asks for {', '.join(too_big)}, beyond "
            f"the bound {MAX_CONFIG_INT} of any option; the header is damaged or crafted. Nothing "
            "was built"
        )
    try:
        with torch.device("meta"):  # the shapes alone: no memory, whatever the config says
            skeleton = build_net(arch, config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: {exc}") from None
    _check_shapes(path, arch, config, skeleton.state_dict(), tensors)
    try:
        module = build_net(arch, config)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: {exc}") from None
    floats = [t.dtype for t in tensors.values() if t.is_floating_point()]
    if floats:
        module.to(dtype=floats[0])
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        problems = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()] or [str(exc)]
        more = f"; ... ({len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r}: the weights do not fit {arch!r} with config {config}: "
            + "; ".join(problems[:3])
            + more
        ) from None
    return module.eval()


def load_checkpoint(
    path: str | Path, *, trust: bool | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint without executing anything from the file.

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` checkpoint (or a weights-only ``.pt`` file).
    trust : bool, optional
        Accept a file without a digest (``.pt``, DEQ Explorer 0.1, foreign
        tools). Default: the environment's ``DEQ_EXPLORER_TRUST_CHECKPOINTS``.

    Returns
    -------
    module : nn.Module
        The rebuilt network with its weights, on CPU, in eval mode.
    metadata : dict
        The metadata record.

    Raises
    ------
    CheckpointError
        Missing, truncated or corrupted file; no digest (without ``trust``) or
        a wrong one; a pickle that would run code; unknown architecture; a
        config out of bounds or weights that do not fit it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {str(path)!r}")
    if path.suffix == ".safetensors":
        tensors, metadata = _read_safetensors(path, _trusted(trust))
    elif path.suffix == ".pt":
        tensors, metadata = _read_pt(path, _trusted(trust))
    else:
        raise CheckpointError(
            f"cannot read {path.name!r}: checkpoints are .safetensors files (or weights-only .pt)"
        )
    weights = {k: v for k, v in tensors.items() if not k.startswith(_STATE_PREFIX)}
    return _rebuild(path, weights, metadata), metadata


def load_state(path: str | Path, *, trust: bool | None = None) -> dict[str, Tensor]:
    """The ``state`` tensors saved beside the weights (see :func:`save_checkpoint`), verified."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{path.name!r} holds no training state: it is not a .safetensors file"
        )
    tensors, _ = _read_safetensors(path, _trusted(trust))
    n = len(_STATE_PREFIX)
    return {k[n:]: v for k, v in tensors.items() if k.startswith(_STATE_PREFIX)}


def _check_prior_record(path: Path, metadata: dict[str, Any]) -> float:
    """The default σ of a denoiser checkpoint's record; refuses a backbone or a bad σ."""
    arch = metadata.get("architecture")
    if arch in architectures and getattr(architectures.get(arch), "role", "denoiser") != "denoiser":
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {arch!r} network, which is a backbone (y ↦ x), "
            "not a denoiser, and cannot be used as a prior: give it to mcnet-admm as its "
            "backbone instead (api.backbone, the GUI's backbone choice)"
        )
    sigma = metadata.get("sigma", 0.0)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise CheckpointError(f"checkpoint {str(path)!r}: 'sigma' must be a number; got {sigma!r}")
    return float(sigma)


def load_prior(
    path: str | Path, name: str | None = None, *, trust: bool | None = None
) -> CheckpointPrior:
    """Load a checkpointed denoiser as a :class:`~deq_explorer.priors.base.Prior`.

    The prior's noise level is ``metadata["sigma"]`` (0 when absent) and its
    name ``name``, else ``metadata["name"]``, else the file's stem. ``trust``
    as in :func:`load_checkpoint`.
    """
    path = Path(path)
    if path.suffix == ".safetensors":  # a backbone is refused before anything is built
        _check_prior_record(path, read_metadata(path))
    module, metadata = load_checkpoint(path, trust=trust)
    sigma = _check_prior_record(path, metadata)
    name = name or metadata.get("name") or path.stem
    return CheckpointPrior(module, sigma, str(name), metadata, path)


def backbone_names() -> list[str]:
    """Names of the shipped backbones (files in :data:`BACKBONE_DIR`)."""
    return sorted(p.stem for p in BACKBONE_DIR.glob("*.safetensors"))


def load_backbone(spec: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A reconstruction network ``y ↦ x`` (e.g. an SRCNN) and its metadata.

    ``spec`` is a checkpoint path or the name of a shipped backbone
    (:func:`backbone_names`). Raises :class:`CheckpointError` when the file
    holds a denoiser or nothing loadable.
    """
    path = Path(spec)
    if not path.is_file() and str(spec) in backbone_names():
        path = BACKBONE_DIR / f"{spec}.safetensors"
    if not path.is_file():
        raise CheckpointError(
            f"no backbone {str(spec)!r}: give a checkpoint path or one of "
            f"{', '.join(backbone_names()) or '(none shipped)'}"
        )
    module, metadata = load_checkpoint(path)
    if getattr(type(module), "role", "denoiser") != "backbone":
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {metadata['architecture']!r} denoiser, not a "
            "backbone: use it as a prior instead"
        )
    return module, metadata


#: the noise-input floor of :func:`sigma_rule`: what a denoiser prior needs without noise
SIGMA_FLOOR = 0.003


def sigma_rule(metadata: dict[str, Any], default: float) -> Callable[[Scale], dict] | None:
    """The noise input σ_in a solve gives a denoiser prior, from the problem's noise σ.

    An AWGN denoiser (mode ``awgn``) when denoising: ``1.2σ`` (at least
    :data:`SIGMA_FLOOR`; the data term alone makes that map contract). Any other operator:
    ``max(s, σ + SIGMA_FLOOR + 0.02·(1 − sampling))`` with ``s`` the prior's recorded
    input (its ``default``, 0.03 for ``dncnn-awgn``): a little more than the noise, more
    where a mask leaves entries unmeasured (inpainting, MRI; only the prior fills them), and
    never below ``s``, the input the map was checked to contract at. Below it the map
    stops contracting although the PSNR at the cap may be higher: SR ×2 at 128², σ = 0.01,
    PnP-PGM, ``dncnn-awgn`` with input 0.013 stalls at a residual of 2.9e-4 (ratio 1.001
    per iteration, Anderson 1.004), with 0.03 it converges (0.993; Anderson in 157
    iterations, BENCHMARKS.md).

    A prior trained in a solve at noise ``σ_t`` with input ``s_t`` (its ``default``) keeps
    ``s_t`` up to its training noise and above it grows with the noise,
    ``s_t · max(1, (σ + floor) / (σ_t + floor))``: on MRI at 128² (``deq-mri-radial10``,
    σ_t = 0.01) inputs below ``s_t`` lost 0.1–0.4 dB at σ = 0.005, while at σ = 0.05
    (denoising) twice ``s_t`` gained 0.8 dB (``benchmarks/defaults.py``).
    None (no rule) for MCNet priors, whose σ is part of the learned layer, and for
    records without a training noise level.
    """
    mode = metadata.get("mode")
    if mode == "mcnet" or not default > 0:
        return None
    if mode == "awgn":

        def awgn(scale: Scale) -> dict[str, float]:
            if scale.denoising:
                return {"sigma": max(1.2 * scale.noise, SIGMA_FLOOR)}
            unmeasured = 0.02 * (1.0 - scale.sampling)
            return {"sigma": max(default, scale.noise + SIGMA_FLOOR + unmeasured)}

        return awgn
    noise = (metadata.get("recipe") or {}).get("noise")
    trained = noise[0] if isinstance(noise, list) and len(noise) == 1 else None
    if isinstance(trained, bool) or not isinstance(trained, (int, float)) or trained < 0:
        return None

    def learned(scale: Scale) -> dict[str, float]:
        grow = (scale.noise + SIGMA_FLOOR) / (trained + SIGMA_FLOOR)
        return {"sigma": default * max(1.0, grow)}

    return learned


def register_checkpoint(
    path: str | Path, name: str | None = None, *, replace: bool = False, verify: bool = True
) -> str:
    """Register a checkpoint as a prior in ``registry.priors``; returns its name.

    With ``verify`` the checkpoint is loaded once now (bad files fail here);
    without, only its header's record is read (cheap: the shipped priors at
    import). Either way it is loaded, verified, from disk at each
    ``priors.build(name)``, which accepts the option ``sigma`` (default from
    the metadata) and the context arguments ``device`` and ``dtype``. The
    entry carries the metadata and the path. Registering the same file under
    the same name again is allowed (after re-training); taking a name held by
    anything else needs ``replace=True``.
    """
    path = Path(path).resolve()
    if verify:
        metadata = load_prior(path, name).metadata
    else:
        metadata = read_metadata(path)
        _architecture(path, metadata)
    default_sigma = _check_prior_record(path, metadata)
    name = name or metadata.get("name") or path.stem
    if name in prior_registry and not replace:
        held = prior_registry.entry(name).metadata.get("path")
        if held != str(path):
            raise CheckpointError(
                f"prior name {name!r} is already registered; pass another name or replace=True"
            )

    def factory(device: Any = None, dtype: Any = None, *, sigma: Sigma = default_sigma):
        loaded = load_prior(path, name)
        loaded.sigma = float(sigma)
        return loaded.to(device, dtype)

    arch = metadata["architecture"]
    mode = metadata.get("mode", "trained")
    derive = sigma_rule(metadata, default_sigma)
    rule = {} if derive is None else {"problem_defaults": derive}
    try:
        prior_registry.register(
            name,
            factory,
            summary=f"{arch} prior ({mode}) from {path.name}",
            metadata={**metadata, "path": str(path), **rule},
            replace=True,
        )
    except ValueError as exc:
        raise CheckpointError(f"cannot register {str(path)!r}: {exc}; pass name=") from None
    return name


def user_dir() -> Path:
    """The folder the GUI keeps the priors it trains in (listed again after a restart).

    ``$DEQ_EXPLORER_PRIORS`` if set, else ``$XDG_DATA_HOME/deq-explorer/priors``
    (``~/.local/share/deq-explorer/priors`` by default). Not created here.
    """
    if os.environ.get("DEQ_EXPLORER_PRIORS"):
        return Path(os.environ["DEQ_EXPLORER_PRIORS"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser() / "deq-explorer" / "priors"


def register_user_priors() -> list[str]:
    """Register the checkpoints in :func:`user_dir` (from their headers); returns their names.

    A file whose name is taken (a shipped prior's, say) is skipped with a warning.
    """
    folder = user_dir()
    return register_shipped(folder) if folder.is_dir() else []


def register_shipped(folder: str | Path = SHIPPED_DIR) -> list[str]:
    """Register every ``*.safetensors`` checkpoint in ``folder`` as a prior, from its header.

    Registration reads each header only (no weights, no digest: instant); a
    prior's file is verified when it is built. A file whose header cannot be
    read is skipped with a warning, so one bad file cannot break the package
    import. ``NAME.best.safetensors`` (a training run's best-validation copy, written
    beside its checkpoint) is not registered. Returns the registered names.
    """
    names = []
    for path in sorted(Path(folder).glob("*.safetensors")):
        if path.name.endswith(".best.safetensors"):
            continue  # a training run's best-so-far copy, not the shipped file
        try:
            names.append(register_checkpoint(path, verify=False))
        except CheckpointError as exc:
            warnings.warn(f"skipped shipped prior {path.name}: {exc}", RuntimeWarning, stacklevel=2)
    return names
