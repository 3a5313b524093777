"""Export a learned prior's denoiser for use outside DEQ Explorer.

Three formats (:data:`FORMATS`), each holding the denoiser ``D(x, σ)`` alone:

- ``"bioimageio"``: a BioImage Model Zoo package (a ``.zip``, model RDF 0.5, built
  with ``bioimageio.spec``). σ is a second input tensor ``sigma`` of shape
  ``(B, 1)`` when the network reads it, so a consumer chooses the noise level per
  image; the test tensors are a seeded noisy crop of a built-in photo at the
  prior's own σ. The weights are a PyTorch state dict with a self-contained
  architecture file (the network's own source, which imports torch only; see
  :func:`standalone_source`) and TorchScript weights converted from it.
- ``"torchscript"``: ``x ↦ D(x, σ)`` traced with σ fixed (``torch.jit.load``).
- ``"onnx"``: the same graph through ``torch.onnx.export`` (needs ``onnxscript``),
  batch and image size dynamic.

The solve (solver, acceleration, tolerance) does not travel in any format;
``priors/shipped/FORMATS.md`` says what each keeps and loses and is appended to
the package's model card. The optional packages come with the ``export`` extra
(:data:`EXTRA`).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib.util
import io
import json
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from deq_explorer import api, jsonio
from deq_explorer.atomic import atomic_write
from deq_explorer.errors import ExportError
from deq_explorer.images import center_crop, load_sample, to_gray
from deq_explorer.priors import nets
from deq_explorer.priors.base import DenoiserPrior, Prior
from deq_explorer.priors.checkpoint import SHIPPED_DIR
from deq_explorer.priors.nets._exported import FixedSigma, SigmaInput

__all__ = ["EXTRA", "FORMATS", "FORMATS_DOC", "ExportError", "export_prior", "standalone_source"]

Format = Literal["bioimageio", "torchscript", "onnx"]
#: the export formats and the file suffix each writes
FORMATS: dict[str, str] = {"bioimageio": ".zip", "torchscript": ".pt", "onnx": ".onnx"}
#: how to install what the bioimageio and onnx formats need
EXTRA = 'pip install "deq-explorer[export]"'
#: what each format keeps and loses (appended to the package's model card)
FORMATS_DOC = SHIPPED_DIR / "FORMATS.md"
ONNX_OPSET = 18
LICENSE = "BSD-3-Clause"  # the package's licence (pyproject.toml), weights included
#: the papers behind each architecture (DOIs), and behind DEQ training
CITATIONS: dict[str, tuple[str, str]] = {
    "dncnn": (
        "Zhang, Zuo, Chen, Meng, Zhang. Beyond a Gaussian Denoiser: Residual Learning of Deep "
        "CNN for Image Denoising. IEEE TIP 26(7), 2017.",
        "10.1109/TIP.2017.2662206",
    ),
    "unet": (
        "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image "
        "Segmentation. MICCAI 2015.",
        "10.1007/978-3-319-24574-4_28",
    ),
    "deq": (
        "Gilton, Ongie, Willett. Deep Equilibrium Architectures for Inverse Problems in "
        "Imaging. IEEE TCI 7, 2021.",
        "10.1109/TCI.2021.3118944",
    ),
}
#: imports an architecture file may keep (torch and the standard library)
_ALLOWED_ROOTS = {"torch", "__future__"}
_PACKAGE = "deq_explorer"


def export_prior(
    prior: str | Prior,
    out: str | Path,
    fmt: Format = "bioimageio",
    *,
    sigma: float | None = None,
    seed: int = 0,
    size: int = 64,
) -> Path:
    """Write ``prior``'s denoiser to ``out`` in format ``fmt``.

    Parameters
    ----------
    prior : str or Prior
        A learned prior: a registry name (``"dncnn-awgn"``), a checkpoint path,
        or a :class:`~deq_explorer.priors.base.DenoiserPrior` around a network of
        :data:`~deq_explorer.priors.nets.architectures`.
    out : str or Path
        The file to write, ending in the format's suffix (:data:`FORMATS`); its
        folder must exist. An existing file is replaced, atomically.
    fmt : {"bioimageio", "torchscript", "onnx"}
        See the module docstring.
    sigma : float, optional
        The noise level of the test tensors (bioimageio) or the one fixed in the
        graph (torchscript, onnx); default the prior's own σ.
    seed : int
        Seed of the test tensors' noise.
    size : int
        Side of the square test image (a multiple of 16, at least 16).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ExportError
        Unknown format, bad ``out``, a prior without an exportable network, a
        missing optional package (:data:`EXTRA`), or a graph that does not export.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    out = _check_out(Path(out), fmt)
    if size < 16 or size % 16:
        raise ExportError(f"the test image side must be a multiple of 16, at least 16; got {size}")
    loaded = api.build_prior(prior, device="cpu")
    net = _network(loaded)
    level = loaded.sigma if sigma is None else float(sigma)
    if not (math.isfinite(level) and level >= 0):
        raise ExportError(f"sigma must be a number >= 0 (the [0, 1] scale); got {level}")
    if fmt == "bioimageio":
        return _bioimageio(loaded, net, level, out, seed, size)
    fixed = FixedSigma(net, level).eval()
    example = _test_image(_channels(net), size, seed, level)
    if fmt == "torchscript":
        return _place(_torchscript(fixed, (example,)), out)
    return _place(_onnx(fixed, example), out)


def _check_out(out: Path, fmt: str) -> Path:
    """Refuse an output path that cannot be written, before any work."""
    suffix = FORMATS[fmt]
    if out.is_dir():
        raise ExportError(f"{str(out)!r} is a folder; give a file name ending in {suffix}")
    if out.suffix != suffix:
        raise ExportError(f"the {fmt} format writes a {suffix} file; got {str(out)!r}")
    folder = out.parent
    if not folder.is_dir():
        raise ExportError(f"folder {str(folder)!r} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"folder {str(folder)!r} is not writable")
    return out


def _place(data: bytes, out: Path) -> Path:
    try:
        with atomic_write(out) as f:
            f.write(data)
    except OSError as exc:
        raise ExportError(f"cannot write {str(out)!r}: {exc}") from None
    return out


def _network(prior: Prior) -> nn.Module:
    """A float32, eval-mode copy of the prior's network, in the default memory layout."""
    module = prior.module
    if not isinstance(prior, DenoiserPrior) or module is None or prior.denoiser is not module:
        raise ExportError(
            f"prior {prior.name!r} has no network to export; export a learned prior (a "
            "checkpoint or a trained registry entry such as dncnn-awgn)"
        )
    try:
        nets.architecture_of(module)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    net = copy.deepcopy(module).float().eval().requires_grad_(False)
    for p in net.parameters():
        p.data = p.data.contiguous()
    return net


def _channels(net: nn.Module) -> int:
    return int(getattr(net, "channels", 1))


def _reads_sigma(net: nn.Module) -> bool:
    """Whether the network's output depends on σ (DnCNN with a noise map, the UNet)."""
    x = _test_image(_channels(net), 16, 0, 0.05)
    with torch.no_grad():
        return not torch.equal(net(x, 0.0), net(x, 0.1))


def _test_image(channels: int, size: int, seed: int, sigma: float) -> Tensor:
    """A seeded noisy centre crop of the built-in astronaut photo, ``(1, C, size, size)``."""
    if channels not in (1, 3):
        raise ExportError(f"only gray or RGB networks are exported; this one has {channels}")
    image = load_sample("astronaut")
    image = to_gray(image) if channels == 1 else image
    clean = torch.from_numpy(center_crop(image, size))[None]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    return clean + sigma * noise


def _torchscript(module: nn.Module, example: tuple[Tensor, ...]) -> bytes:
    """``module`` traced on ``example`` and saved (``torch.jit.load`` reads it back)."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # torch 2.13 deprecates torch.jit, and the tracer notes Python-level shape checks
        warnings.simplefilter("ignore")
        module(*example)  # fills inference caches (SN-DnCNN's scaled kernels) before tracing
        torch.jit.save(torch.jit.trace(module, example), buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a library's logging below errors (the ONNX exporter's notes on torchvision)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _onnx(module: nn.Module, example: Tensor) -> bytes:
    """``module`` as ONNX bytes (opset :data:`ONNX_OPSET`), batch and image size dynamic."""
    if importlib.util.find_spec("onnxscript") is None:
        raise ExportError(f"the onnx format needs onnx and onnxscript; {EXTRA}")
    auto = torch.export.Dim.AUTO
    log = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with contextlib.redirect_stdout(log), _quiet("torch.onnx"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    (example,),
                    path,
                    input_names=["image"],
                    output_names=["denoised"],
                    opset_version=ONNX_OPSET,
                    dynamic_shapes=({0: auto, 2: auto, 3: auto},),
                    external_data=False,
                )
        except Exception as exc:  # the exporter raises many kinds; all mean "does not export"
            while exc.__cause__ is not None:
                exc = exc.__cause__
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(
                f"the network does not export to ONNX cleanly ({why}); use the torchscript format"
            ) from None
        return path.read_bytes()


# -- the architecture file ---------------------------------------------------------------


def _module_source(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ExportError(f"cannot find the source of module {name!r}")
    return Path(spec.origin).read_text(encoding="utf-8")


def standalone_source(cls: type[nn.Module], factory: str) -> str:
    """One self-contained Python file defining ``cls`` and ``factory(**config)``.

    The file is the source of ``cls``'s module, of the package modules it imports
    (recursively, dependencies first) and of
    :mod:`~deq_explorer.priors.nets._exported`, with the imports between them
    removed; the sources are read, not run. ``factory`` builds ``cls(**config)``,
    wrapped in :class:`~deq_explorer.priors.nets._exported.SigmaInput` when
    ``factory`` is ``"denoiser_with_sigma"``.

    Raises
    ------
    ExportError
        The network's source imports anything but torch and the standard library.
    """
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for node in ast.parse(_module_source(name)).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(_PACKAGE):
                visit(node.module)
        order.append(name)

    visit(cls.__module__)
    visit(SigmaInput.__module__)
    parts = [
        f'"""{cls.__name__}, exported by DEQ Explorer: torch is its only dependency."""',
        "from __future__ import annotations",
    ]
    for name in order:
        text = _module_source(name)
        lines = text.splitlines()
        drop: set[int] = set()
        for node in ast.parse(text).body:
            internal = isinstance(node, ast.ImportFrom) and (
                (node.module or "").startswith(_PACKAGE) or node.module == "__future__"
            )
            exports = isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            )
            if internal or exports:
                drop |= set(range(node.lineno - 1, node.end_lineno or node.lineno))
        body = "\n".join(line for i, line in enumerate(lines) if i not in drop)
        parts.append(f"# ---- from {name}\n" + re.sub(r"\n{3,}", "\n\n", body.strip()))
    build = f"{cls.__name__}(**config)"
    if factory == "denoiser_with_sigma":
        build = f"SigmaInput({build})"
    parts.append(
        f"def {factory}(**config):\n"
        f'    """The exported network, built from its config."""\n'
        f"    return {build}"
    )
    source = "\n\n\n".join(parts) + "\n"
    _check_imports(source, cls)
    return source


def _check_imports(source: str, cls: type) -> None:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots = {(node.module or "").split(".")[0]}
        else:
            continue
        foreign = {r for r in roots if r not in _ALLOWED_ROOTS and r not in sys.stdlib_module_names}
        if foreign:
            raise ExportError(
                f"{cls.__name__}'s source imports {', '.join(sorted(foreign))}: only networks "
                "whose source needs torch alone export to bioimageio; use --format torchscript"
            )


# -- the BioImage Model Zoo package --------------------------------------------------------


def _card(prior: Prior, metadata: dict[str, Any]) -> str:
    """The prior's model card: its shipped ``NAME.md`` if any, else one made from metadata."""
    path = getattr(prior, "path", None)
    if path is not None and Path(path).with_suffix(".md").is_file():
        return Path(path).with_suffix(".md").read_text(encoding="utf-8").strip()
    rows = [f"| {k} | `{json.dumps(metadata[k])}` |" for k in
            ("architecture", "config", "mode", "operators", "noise_levels", "data", "steps",
             "metrics") if k in metadata]  # fmt: skip
    table = "\n".join(["| | |", "|---|---|", *rows]) if rows else "(no training record)"
    return f"# Model card: `{prior.name}`\n\nA learned denoiser from DEQ Explorer.\n\n{table}"


def _package_notes(name: str, reads_sigma: bool, sigma: float, trained: dict[str, Any]) -> str:
    inputs = (
        "`image` `(B, C, H, W)` and `sigma` `(B, 1)`, the noise level of each image"
        if reads_sigma
        else "`image` `(B, C, H, W)` (this network ignores the noise level)"
    )
    solve = ", ".join(f"{k} `{v}`" for k, v in trained.items()) or "none recorded (a denoiser)"
    return (
        "## This package\n\n"
        f"The denoiser of DEQ Explorer's prior `{name}`, written by `deq-explorer export`. "
        f"Inputs: {inputs}, intensities and σ on the [0, 1] scale, any H and W of the form "
        f"16 + 16 n. Output: `denoised`, the shape of `image`. The test input is a seeded noisy "
        f"crop of the built-in astronaut photo at σ = {sigma:g}. The prior's trained solve "
        f"(does not travel): {solve}.\n\n"
        "## Validation\n\n"
        "`bioimageio.core`'s test reproduces the test output from the test inputs; the metrics "
        "of the model card above were measured inside DEQ Explorer on held-out images."
    )


def _axes(bio: Any, channels: int, *, output: bool) -> list[Any]:
    """Batch, channel, y, x: any side 16 + 16 n in; out, the sides of the input ``image``."""
    names = ["gray"] if channels == 1 else ["red", "green", "blue"]
    if output:
        ref = [bio.SizeReference(tensor_id=bio.TensorId("image"), axis_id=bio.AxisId(a))
               for a in ("y", "x")]  # fmt: skip
        space = [bio.SpaceOutputAxis(id=r.axis_id, size=r) for r in ref]
    else:
        size = bio.ParameterizedSize(min=16, step=16)
        space = [bio.SpaceInputAxis(id=bio.AxisId(a), size=size) for a in ("y", "x")]
    return [bio.BatchAxis(), bio.ChannelAxis(channel_names=names), *space]


def _write(folder: Path, filename: str, data: bytes | str | Tensor) -> Path:
    """Stage one file of the package (a tensor as float32 ``.npy``)."""
    path = folder / filename
    if isinstance(data, Tensor):
        np.save(path, data.numpy().astype(np.float32))
    else:
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _bioimageio(
    prior: Prior, net: nn.Module, sigma: float, out: Path, seed: int, size: int
) -> Path:
    """Stage the package's files in a temporary folder, describe them, zip them to ``out``."""
    try:
        from bioimageio.spec import save_bioimageio_package
        from bioimageio.spec.model import v0_5 as bio
    except ImportError as exc:
        raise ExportError(f"the bioimageio format needs bioimageio.spec ({exc}); {EXTRA}") from None
    arch, channels = nets.architecture_of(net), _channels(net)
    metadata = {"architecture": arch, "config": net.config(), "sigma": prior.sigma,
                **(getattr(prior, "metadata", None) or {})}  # fmt: skip
    trained = api.trained_settings(prior)
    reads_sigma = _reads_sigma(net)
    model = SigmaInput(net).eval() if reads_sigma else net
    factory = "denoiser_with_sigma" if reads_sigma else "denoiser"
    image = _test_image(channels, size, seed, sigma)
    inputs = (image, torch.full((1, 1), sigma)) if reads_sigma else (image,)
    with torch.no_grad():
        output = model(*inputs)
    name = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", prior.name)
    torch_version = bio.Version(torch.__version__.split("+")[0])
    cites = [CITATIONS[k] for k in (arch, "deq" if trained else "") if k in CITATIONS]

    with tempfile.TemporaryDirectory() as tmp:

        def staged(filename: str, data: bytes | str | Tensor) -> Any:
            return bio.FileDescr(source=_write(Path(tmp), filename, data))

        readme = "\n\n".join([
            _card(prior, metadata),
            _package_notes(prior.name, reads_sigma, sigma, trained),
            FORMATS_DOC.read_text(encoding="utf-8"),
        ])  # fmt: skip
        attachments = [staged(f"{name}.metadata.json", jsonio.dumps(metadata))]
        path = getattr(prior, "path", None)
        for extra in [Path(path).with_suffix(s) for s in (".toml", ".curve.png")] if path else []:
            if extra.is_file():
                attachments.append(staged(extra.name, extra.read_bytes()))
        state = io.BytesIO()
        torch.save({k: v.contiguous().clone() for k, v in model.state_dict().items()}, state)

        def described(kind: Any, tid: str, what: str, axes: list[Any], value: Tensor) -> Any:
            return kind(id=bio.TensorId(tid), description=what, axes=axes,
                        test_tensor=staged(f"test_{tid}.npy", value))  # fmt: skip

        image_in = described(bio.InputTensorDescr, "image", "noisy image, [0, 1] intensity scale",
                             _axes(bio, channels, output=False), image)  # fmt: skip
        sigma_in = described(
            bio.InputTensorDescr, "sigma",
            "noise level (AWGN standard deviation) of each image, [0, 1] scale",
            [bio.BatchAxis(), bio.ChannelAxis(channel_names=["sigma"])], inputs[-1],
        )  # fmt: skip
        denoised = described(bio.OutputTensorDescr, "denoised",
                             "denoised image, [0, 1] intensity scale",
                             _axes(bio, channels, output=True), output)  # fmt: skip
        architecture = bio.ArchitectureFromFileDescr(
            source=_write(Path(tmp), f"{arch.replace('-', '_')}.py",
                          standalone_source(type(net), factory)),
            callable=bio.Identifier(factory),
            kwargs=net.config(),
        )  # fmt: skip
        weights = bio.WeightsDescr(
            pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                source=_write(Path(tmp), "weights.pt", state.getvalue()),
                architecture=architecture,
                pytorch_version=torch_version,
            ),
            torchscript=bio.TorchscriptWeightsDescr(
                source=_write(Path(tmp), "weights_torchscript.pt", _torchscript(model, inputs)),
                pytorch_version=torch_version,
                parent="pytorch_state_dict",
            ),
        )
        descr = bio.ModelDescr(
            name=f"DEQ Explorer {name}",
            description=(
                f"The {arch} denoiser of DEQ Explorer's prior {prior.name} (a plug-and-play / "
                "deep-equilibrium prior), alone: the fixed-point solve it is used in does not "
                "travel (see the documentation)."
            ),
            authors=[bio.Author(name="DEQ Explorer maintainers")],
            cite=[bio.CiteEntry(text=text, doi=bio.Doi(doi)) for text, doi in cites],
            license=bio.LicenseId(LICENSE),
            documentation=staged("README.md", readme),
            attachments=attachments,
            tags=["denoising", "2d", "pytorch", "plug-and-play", "deep-equilibrium"],
            inputs=[image_in, sigma_in] if reads_sigma else [image_in],
            outputs=[denoised],
            weights=weights,
            config={"deq_explorer": {"prior": prior.name, "sigma": sigma, "trained": trained}},
        )
        package = Path(tmp) / "package.zip"
        save_bioimageio_package(descr, output_path=package)
        return _place(package.read_bytes(), out)
