"""Checkpoints: weights plus a metadata record, loaded without executing code.

The one format is a safetensors file (``.safetensors``): the tensors of the
network's ``state_dict`` and, in the header's metadata, a JSON record under
the key ``"deq_explorer"`` (architecture, its config, training mode and
recipe, operators and noise levels, data, steps, metrics, package version,
creation time) plus a SHA-256 digest of the tensors. The network is rebuilt
from the architecture *name* and config (:func:`~deq_explorer.priors.nets.build_net`),
so nothing in the file is ever run. Legacy ``.pt`` files are read only through
``torch.load(weights_only=True)`` and must hold ``{"state_dict", "metadata"}``.

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
import pickle
import re
import warnings
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from deq_explorer.atomic import atomic_write
from deq_explorer.priors.base import DenoiserPrior
from deq_explorer.priors.nets import ARCHITECTURES, architecture_of, build_net
from deq_explorer.registry import priors as prior_registry

__all__ = [
    "BACKBONE_DIR",
    "SHIPPED_DIR",
    "CheckpointError",
    "CheckpointPrior",
    "backbone_names",
    "load_backbone",
    "load_checkpoint",
    "load_prior",
    "register_checkpoint",
    "register_shipped",
    "save_checkpoint",
]

SHIPPED_DIR = Path(__file__).parent / "shipped"
#: trained reconstruction networks (MCNet backbones), loaded by name with :func:`load_backbone`
BACKBONE_DIR = SHIPPED_DIR / "backbones"
_META_KEY = "deq_explorer"
_DIGEST_KEY = "sha256"


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, unsafe, or does not fit its architecture."""


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


def _digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors`` in name order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, module: nn.Module, metadata: dict[str, Any]) -> Path:
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
        A network of :data:`~deq_explorer.priors.nets.ARCHITECTURES`.
    metadata : dict
        JSON-serialisable facts about the training (see the module docstring).

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoints are written as .safetensors files; got {path.name!r}")
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
        raise ValueError(
            f"checkpoint metadata is not JSON-serialisable ({exc}); use numbers, strings, "
            "lists and dicts"
        ) from None
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    data = safetensors_bytes(tensors, metadata={_META_KEY: text, _DIGEST_KEY: _digest(tensors)})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(data)
    return path


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted or truncated ({exc}); re-save or re-download it"
        ) from None
    if _META_KEY not in header:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a DEQ Explorer checkpoint: its header "
            f"has no {_META_KEY!r} metadata record; write checkpoints with save_checkpoint"
        )
    try:
        metadata = json.loads(header[_META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: its metadata record is not valid JSON ({exc})"
        ) from None
    digest = header.get(_DIGEST_KEY)
    if digest is not None and digest != _digest(tensors):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: the weights do not match the checksum "
            "stored in its header; re-save or re-download it"
        )
    return tensors, metadata


def _read_pt(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
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
    return dict(obj["state_dict"]), dict(obj["metadata"])


def _rebuild(path: Path, tensors: dict[str, Tensor], metadata: dict[str, Any]) -> nn.Module:
    arch = metadata.get("architecture")
    if arch not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise CheckpointError(
            f"checkpoint {str(path)!r} names unknown architecture {arch!r}; known: {known} "
            "(was it written by a newer DEQ Explorer or a plugin that is not installed?)"
        )
    config = metadata.get("config", {})
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {str(path)!r}: 'config' must be a dict; got {config!r}")
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


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint without executing anything from the file.

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` checkpoint (or a weights-only ``.pt`` file).

    Returns
    -------
    module : nn.Module
        The rebuilt network with its weights, on CPU, in eval mode.
    metadata : dict
        The metadata record.

    Raises
    ------
    CheckpointError
        Missing, truncated or corrupted file; a pickle that would run code;
        unknown architecture; weights that do not fit the config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {str(path)!r}")
    if path.suffix == ".safetensors":
        tensors, metadata = _read_safetensors(path)
    elif path.suffix == ".pt":
        tensors, metadata = _read_pt(path)
    else:
        raise CheckpointError(
            f"cannot read {path.name!r}: checkpoints are .safetensors files (or weights-only .pt)"
        )
    return _rebuild(path, tensors, metadata), metadata


def load_prior(path: str | Path, name: str | None = None) -> CheckpointPrior:
    """Load a checkpointed denoiser as a :class:`~deq_explorer.priors.base.Prior`.

    The prior's noise level is ``metadata["sigma"]`` (0 when absent) and its
    name ``name``, else ``metadata["name"]``, else the file's stem.
    """
    path = Path(path)
    module, metadata = load_checkpoint(path)
    if getattr(type(module), "role", "denoiser") != "denoiser":
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {metadata['architecture']!r} network, which is "
            "not a denoiser and cannot be used as a prior"
        )
    sigma = metadata.get("sigma", 0.0)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise CheckpointError(f"checkpoint {str(path)!r}: 'sigma' must be a number; got {sigma!r}")
    name = name or metadata.get("name") or path.stem
    return CheckpointPrior(module, float(sigma), str(name), metadata, path)


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


def register_checkpoint(path: str | Path, name: str | None = None, *, replace: bool = False) -> str:
    """Register a checkpoint as a prior in ``registry.priors``; returns its name.

    The checkpoint is loaded once now (bad files fail here) and again from
    disk at each ``priors.build(name)``, which accepts the option ``sigma``
    (default from the metadata) and the context arguments ``device`` and
    ``dtype``. The entry carries the metadata and the path. Registering the
    same file under the same name again is allowed (after re-training);
    taking a name held by anything else needs ``replace=True``.
    """
    path = Path(path).resolve()
    prior = load_prior(path, name)
    name = prior.name
    if name in prior_registry and not replace:
        held = prior_registry.entry(name).metadata.get("path")
        if held != str(path):
            raise CheckpointError(
                f"prior name {name!r} is already registered; pass another name or replace=True"
            )
    default_sigma = prior.sigma

    def factory(device: Any = None, dtype: Any = None, *, sigma: float = default_sigma):
        loaded = load_prior(path, name)
        loaded.sigma = float(sigma)
        return loaded.to(device, dtype)

    arch = prior.metadata["architecture"]
    mode = prior.metadata.get("mode", "trained")
    try:
        prior_registry.register(
            name,
            factory,
            summary=f"{arch} prior ({mode}) from {path.name}",
            metadata={**prior.metadata, "path": str(path)},
            replace=True,
        )
    except ValueError as exc:
        raise CheckpointError(f"cannot register {str(path)!r}: {exc}; pass name=") from None
    return name


def register_shipped(folder: str | Path = SHIPPED_DIR) -> list[str]:
    """Register every ``*.safetensors`` checkpoint in ``folder`` as a prior.

    A file that fails to load is skipped with a warning, so one bad file
    cannot break the package import. Returns the registered names.
    """
    names = []
    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            names.append(register_checkpoint(path))
        except CheckpointError as exc:
            warnings.warn(f"skipped shipped prior {path.name}: {exc}", RuntimeWarning, stacklevel=2)
    return names
