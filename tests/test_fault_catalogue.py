"""The fault catalogue: bad input of every kind, judged the same way.

Each case runs one ``deq-explorer`` command line (in this process) in a scratch folder and
must (1) exit with code 2, (2) raise nothing (no traceback), (3) print one ``error:``
message that contains every phrase of ``says`` (the problem *and* what to do), (4) leave
the folder exactly as it was, and (5) execute no code from any file (the malicious pickles
below would create a marker file if anything unpickled them).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import skimage.io
import torch
from safetensors.torch import save_file

from deq_explorer import cli
from deq_explorer.priors.checkpoint import save_checkpoint
from deq_explorer.priors.nets import SRCNN, build_net


@dataclass(frozen=True)
class Case:
    """A command line (``{d}`` is the scratch folder) and the phrases its message must hold."""

    argv: str
    says: tuple[str, ...]
    trust: bool = False  # DEQ_EXPLORER_TRUST_CHECKPOINTS=1: reach the checks past the digest


class _Payload:
    """Unpickling this object would run ``exec`` and create ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _files(d: Path) -> None:
    """The scratch folder's inputs: images, checkpoints good and bad, recipes."""
    rng = np.random.default_rng(0)
    skimage.io.imsave(d / "gray.png", (rng.random((32, 32)) * 255).astype(np.uint8))
    skimage.io.imsave(d / "odd.png", (rng.random((33, 35)) * 255).astype(np.uint8))
    skimage.io.imsave(d / "rgb.png", (rng.random((32, 32, 3)) * 255).astype(np.uint8))
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    (d / "notes.txt").write_text("not an image either")
    (d / "folder").mkdir()
    (d / "dir.npz").mkdir()
    (d / "kept.npz").write_bytes(b"an earlier result")
    (d / "file").write_text("a file, not a folder")
    torch.manual_seed(0)
    net = build_net("dncnn", {"depth": 3, "width": 8})
    good = save_checkpoint(d / "good.safetensors", net, {"mode": "awgn", "sigma": 0.05})
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(d / "foreign.safetensors"))
    save_file(state, str(d / "nodigest.safetensors"),
              metadata={"deq_explorer": json.dumps({"architecture": "dncnn",
                                                    "config": net.config()})})  # fmt: skip
    save_file(state, str(d / "badjson.safetensors"), metadata={"deq_explorer": "{not json"})
    crafted = {"architecture": "dncnn", "config": {**net.config(), "width": 200000}}
    save_file(state, str(d / "crafted.safetensors"),
              metadata={"deq_explorer": json.dumps(crafted)})  # fmt: skip
    wider = {"architecture": "dncnn", "config": {**net.config(), "width": 16}}
    save_file(state, str(d / "misfit.safetensors"),
              metadata={"deq_explorer": json.dumps(wider)})  # fmt: skip
    unknown = {"architecture": "resnet-9000", "config": {}}
    save_file(state, str(d / "unknown.safetensors"),
              metadata={"deq_explorer": json.dumps(unknown)})  # fmt: skip
    save_checkpoint(d / "backbone.safetensors", SRCNN(scale=2, width=8), {"mode": "backbone"})
    data = bytearray(good.read_bytes())
    data[-20] ^= 0xFF
    (d / "flipped.safetensors").write_bytes(bytes(data))
    (d / "truncated.safetensors").write_bytes(good.read_bytes()[:200])
    torch.save({"state_dict": net.state_dict(), "metadata": {"architecture": "dncnn"}},
               d / "legacy.pt")  # fmt: skip
    marker = str(d / "EXECUTED")
    (d / "evil.pt").write_bytes(pickle.dumps({"state_dict": {}, "metadata": _Payload(marker)}))
    torch.save({"state_dict": {}, "metadata": _Payload(marker)}, d / "evil-zip.pt")
    (d / "images").mkdir()
    for i in range(3):
        skimage.io.imsave(d / "images" / f"{i}.png", (rng.random((40, 40)) * 255).astype(np.uint8))
    (d / "bad.toml").write_text("mode = [unclosed\n")
    (d / "unknown-key.toml").write_text('mode = "awgn"\ncrop_size = 3\n')
    (d / "wrong-type.toml").write_text('crop = "big"\n')
    save_checkpoint(d / "nostate.safetensors", net, {"mode": "awgn", "sigma": 0.05, "steps": 1})


R = "reconstruct {d}/gray.png --operator denoise --max-iter 1"
T = "train --data {d}/images --crop 16 --batch 1 --steps 1 --val-images 0 --quiet --no-register"
CASES = {
    # --- images ------------------------------------------------------------------------
    "image missing": Case("reconstruct {d}/absent.png", ("does not exist", "sample:")),
    "image is a folder": Case("reconstruct {d}/folder", ("not a file", "path of one image")),
    "image suffix": Case("reconstruct {d}/notes.txt", ("not a supported image", ".png")),
    "image empty": Case("reconstruct {d}/empty.png", ("empty file", "save the image again")),
    "image is text": Case("reconstruct {d}/text.png", ("not an image", "save it again")),
    "sample unknown": Case("reconstruct sample:nope", ("unknown sample", "camera")),
    "colour for mri": Case("reconstruct {d}/rgb.png --operator mri", ("single-channel", "--gray")),
    "size not divisible": Case(
        "reconstruct {d}/odd.png --operator sr:scale=2", ("divisible", "--crop")
    ),
    # --- operators ---------------------------------------------------------------------
    "operator unknown": Case(R + " --operator nope", ("unknown operator 'nope'", "denoise")),
    "operator option name": Case(R + " --operator sr:scal=2", ("no option 'scal'", "scale=")),
    "operator option value": Case(R + " --operator sr:scale=abc", ("'abc'", "int")),
    "operator spec syntax": Case(R + " --operator sr:scale", ("sr:scale", "key=value")),
    "mri rate": Case(R + " --operator mri:rate=1.5", ("rate", "(0, 1]")),
    "mri pattern": Case(R + " --operator mri:pattern=spiral", ("'spiral'", "radial")),
    "inpaint rate": Case(R + " --operator inpaint:p=2", ("inpaint", "p")),
    "deblur sigma": Case(R + " --operator deblur:sigma=-1", ("sigma", "-1")),
    "solve operator shape": Case(
        "reconstruct {d}/gray.png --operator sr:scale=2 --solve-operator sr:scale=4",
        ("same output size",),
    ),
    "solve operator domain": Case(
        "reconstruct {d}/gray.png --operator mri --solve-operator denoise",
        ("complex", "same measurement domain"),
    ),
    "reverse domain": Case(
        "reconstruct {d}/gray.png --operator denoise --solve-operator mri",
        ("complex", "same measurement domain"),
    ),
    # --- numbers -----------------------------------------------------------------------
    "noise negative": Case(R + " --noise -0.1", ("--noise", ">= 0")),
    "noise nan": Case(R + " --noise nan", ("--noise", ">= 0")),
    "noise not a number": Case(R + " --noise lots", ("--noise", "float")),
    "max-iter zero": Case(R + " --max-iter 0", ("--max-iter", "positive")),
    "max-iter fraction": Case(R + " --max-iter 1.5", ("--max-iter", "int")),
    "tol negative": Case(R + " --tol -1", ("--tol", ">= 0")),
    "seed overflow": Case(R + " --seed 99999999999999999999999", ("seed", "2**63")),
    "seed negative": Case(R + " --seed -1", ("seed", "[0, 2**63)")),
    "device choice": Case(R + " --device tpu", ("--device", "cpu")),
    "unknown flag": Case(R + " --fast", ("unrecognized arguments", "--fast")),
    # --- priors, solvers, accelerators -------------------------------------------------
    "prior unknown": Case(R + " --prior nope", ("unknown prior 'nope'", "dncnn-awgn")),
    "prior option": Case(R + " --prior tv:wieght=1", ("no option 'wieght'", "weight")),
    "solver unknown": Case(R + " --solver nope", ("unknown solver 'nope'", "pnp-pgm")),
    "solver option": Case(R + " --solver pnp-pgm:gamma=abc", ("'abc'", "float")),
    "accel unknown": Case(R + " --accel nope", ("unknown accelerator 'nope'", "anderson")),
    "accel memory": Case(R + " --accel anderson:m=-1", ("memory m", "at least 1")),
    # --- checkpoints -------------------------------------------------------------------
    "checkpoint missing": Case(R + " --prior {d}/absent.safetensors", ("no checkpoint file",)),
    "checkpoint flipped": Case(R + " --prior {d}/flipped.safetensors", ("corrupted", "re-save")),
    "checkpoint truncated": Case(
        R + " --prior {d}/truncated.safetensors", ("corrupted", "re-save")
    ),
    "checkpoint foreign": Case(
        R + " --prior {d}/foreign.safetensors", ("not a DEQ Explorer checkpoint", "save_checkpoint")
    ),
    "checkpoint no digest": Case(
        R + " --prior {d}/nodigest.safetensors", ("no digest", "DEQ_EXPLORER_TRUST_CHECKPOINTS=1")
    ),
    "checkpoint bad json": Case(
        R + " --prior {d}/badjson.safetensors", ("not valid JSON", "re-save")
    ),
    "checkpoint crafted": Case(R + " --prior {d}/crafted.safetensors", ("no digest", "trust")),
    "checkpoint crafted, trusted": Case(
        R + " --prior {d}/crafted.safetensors", ("width=200000", "Nothing was built"), trust=True
    ),
    "checkpoint architecture": Case(
        R + " --prior {d}/unknown.safetensors",
        ("unknown architecture 'resnet-9000'", "dncnn"),
        trust=True,
    ),
    "checkpoint misfit": Case(
        R + " --prior {d}/misfit.safetensors", ("size mismatch", "Nothing was built"), trust=True
    ),
    "checkpoint is a backbone": Case(
        R + " --prior {d}/backbone.safetensors", ("backbone", "mcnet-admm")
    ),
    "checkpoint legacy pt": Case(R + " --prior {d}/legacy.pt", ("no digest", "trust")),
    "checkpoint evil pickle": Case(
        R + " --prior {d}/evil.pt", ("nothing from the file was executed",)
    ),
    "checkpoint evil zip": Case(
        R + " --prior {d}/evil-zip.pt", ("nothing from the file was executed",)
    ),
    "checkpoint suffix": Case(R + " --prior {d}/notes.txt", ("unknown prior",)),
    # --- output ------------------------------------------------------------------------
    "out suffix": Case(R + " --out {d}/result.txt", ("--out", ".npz")),
    "out folder missing": Case(R + " --out {d}/nowhere/r.npz", ("does not exist", "create it")),
    "out is a folder": Case(R + " --out {d}/dir.npz", ("is a folder", ".npz")),
    "out ends in a slash": Case(R + " --out {d}/new.npz/", ("is a folder", ".npz")),
    "out no clobber": Case(
        R + " --out {d}/kept.npz --no-clobber", ("exists", "--no-clobber", "another name")
    ),
    # --- compare -----------------------------------------------------------------------
    "compare without prior": Case("compare {d}/gray.png", ("--prior", "required")),
    "compare bad second prior": Case(
        "compare {d}/gray.png --operator denoise --max-iter 1 --prior tv --prior nope",
        ("unknown prior 'nope'",),
    ),
    # --- training ----------------------------------------------------------------------
    "train data missing": Case(T.replace("{d}/images", "{d}/nowhere"), ("nowhere", "folder")),
    "train crop zero": Case(T + " --crop 0", ("crop", "0")),
    "train batch zero": Case(T + " --batch 0", ("batch",)),
    "train net json": Case(T + " --net {{depth", ("--net", "double quotes")),
    "train net list": Case(T + " --net [1]", ("--net", "JSON object")),
    "train mode": Case(T + " --mode nope", ("--mode", "invalid choice")),
    "train config missing": Case(T + " --config {d}/absent.toml", ("absent.toml",)),
    "train config syntax": Case(T + " --config {d}/bad.toml", ("bad.toml",)),
    "train config key": Case(T + " --config {d}/unknown-key.toml", ("crop_size", "crop")),
    "train config type": Case(T + " --config {d}/wrong-type.toml", ("crop", "int")),
    "train prior unknown": Case(T + " --mode deq --prior no-such-prior", ("no-such-prior",)),
    "train resume missing": Case(T + " --resume {d}/absent.safetensors", ("no checkpoint file",)),
    "train resume no state": Case(
        T + " --resume {d}/nostate.safetensors", ("no training state", "--prior")
    ),
    "train resume evil": Case(T + " --resume {d}/evil.pt", ("nothing from the file was executed",)),
    "train backbone arch": Case(T + " --mode backbone --arch dncnn", ("backbone", "srcnn")),
    "train srcnn prior": Case(T + " --mode awgn --arch srcnn", ("not a denoiser",)),
    "train out suffix": Case(T + " --out {d}/p.pt", (".safetensors",)),
    "train out under a file": Case(
        T + " --out {d}/file/p.safetensors", ("cannot write the checkpoint", "--out")
    ),
    "train operator": Case(
        T + " --mode deq --prior {d}/good.safetensors --operators nope",
        ("unknown operator 'nope'",),
    ),
    "train channels": Case(
        T + " --mode deq --prior {d}/good.safetensors --channels 3", ("channel",)
    ),
    "train noise negative": Case(T + " --noise -1", ("noise",)),
    "train lr negative": Case(T + " --lr -1", ("lr",)),
}


def _snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("faults")
    _files(d)
    return d


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, scratch: Path, capsys, monkeypatch) -> None:
    case = CASES[name]
    monkeypatch.setenv("DEQ_EXPLORER_TRUST_CHECKPOINTS", "1" if case.trust else "")
    argv = case.argv.replace("{{", "\0").format(d=scratch).replace("\0", "{").split()
    before = _snapshot(scratch)
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}: {err[-1500:]}"
    assert "Traceback" not in err
    assert "error:" in err
    lowered = err.lower()
    missing = [phrase for phrase in case.says if phrase.lower() not in lowered]
    assert not missing, f"message lacks {missing}: {err.strip()[-800:]}"
    assert _snapshot(scratch) == before, "the scratch folder changed"
    assert not (scratch / "EXECUTED").exists(), "code from a file was executed"
