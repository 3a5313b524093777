"""Checkpoints: bit-exact round trips, atomic writes, refusal of damaged or unsafe files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from deq_explorer import atomic
from deq_explorer.priors import checkpoint as ckpt
from deq_explorer.priors.base import Prior
from deq_explorer.priors.checkpoint import (
    CheckpointError,
    CheckpointPrior,
    load_checkpoint,
    load_prior,
    register_checkpoint,
    register_shipped,
    save_checkpoint,
)
from deq_explorer.priors.nets import SRCNN, build_net
from deq_explorer.registry import priors

SMALL = {
    "dncnn": {"depth": 4, "width": 8, "batch_norm": True},
    "unet": {"widths": [8, 12], "blocks": 1},
    "sn-dncnn": {"depth": 6, "width": 8, "probe": 8},
}
META = {"mode": "awgn", "sigma": 0.05, "noise_levels": [0.02, 0.05], "steps": 3, "metrics": {}}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_net(arch: str = "dncnn", channels: int = 1):
    torch.manual_seed(0)
    net = build_net(arch, {**SMALL[arch], "channels": channels})
    with torch.no_grad():  # a train-mode pass: BN running stats and SN vectors move
        net.train()(torch.rand(2, channels, 12, 12), 0.05)
    return net.eval()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", sorted(SMALL))
def test_round_trip_is_bit_exact(tmp_path, arch, channels):
    net = small_net(arch, channels)
    path = save_checkpoint(tmp_path / "net.safetensors", net, {**META, "data": "sample:camera"})
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(net) and not loaded.training
    x = torch.rand(2, channels, 13, 11)
    with torch.no_grad():
        assert torch.equal(loaded(x, 0.05), net(x, 0.05))
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert meta["architecture"] == arch and meta["config"] == net.config()
    assert meta["data"] == "sample:camera" and meta["noise_levels"] == [0.02, 0.05]
    assert meta["package_version"] and meta["created"].endswith("+00:00")


def test_float64_weights_keep_their_dtype(tmp_path):
    net = small_net().double()
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "d.safetensors", net, META))
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(loaded(x, 0.0), net(x, 0.0))


def test_atomic_write_leaves_only_the_file(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "net.safetensors"
    save_checkpoint(path, small_net(), META)
    save_checkpoint(path, small_net("unet"), META)  # overwrite in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.safetensors"]
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small_net(), META)
    assert path.read_bytes() == before  # the old checkpoint is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.safetensors"]


def test_save_rejects_bad_requests(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_checkpoint(tmp_path / "net.pt", small_net(), META)
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "net.safetensors", small_net(), {"bad": object()})
    with pytest.raises(ValueError, match="not a known architecture"):
        save_checkpoint(tmp_path / "net.safetensors", torch.nn.Linear(2, 2), META)
    assert list(tmp_path.iterdir()) == []


def test_missing_truncated_random_and_flipped_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "absent.safetensors")
    good = save_checkpoint(tmp_path / "good.safetensors", small_net(), META).read_bytes()
    cases = {
        "truncated": good[: len(good) - 100],
        "header-cut": good[:40],
        "empty": b"",
        "random": os.urandom(4096),
    }
    flipped = bytearray(good)
    flipped[-20] ^= 0xFF  # inside the weights: only the checksum can see it
    cases["flipped"] = bytes(flipped)
    for name, data in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match="corrupted"):
            load_checkpoint(path)
    path = tmp_path / "random.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this object would create ``marker`` (it runs code through ``exec``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_malicious_pickle_runs_nothing(tmp_path):
    # the payload is live: plain unpickling does create its marker
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists()

    marker = tmp_path / "marker"
    state = small_net().state_dict()
    payload = {"state_dict": state, "metadata": _Payload(marker)}
    raw2 = tmp_path / "raw2.pt"
    raw2.write_bytes(pickle.dumps(payload, protocol=2))
    raw4 = tmp_path / "raw4.pt"
    raw4.write_bytes(pickle.dumps(payload, protocol=4))
    zipped = tmp_path / "zipped.pt"
    torch.save(payload, zipped)
    for path in (raw2, raw4, zipped):
        with pytest.raises(
            CheckpointError, match=r"(?i)nothing from the file was executed"
        ) as info:
            load_checkpoint(path)
        assert "weights_only=False" not in str(info.value)
        assert "set to `False`" not in str(info.value)
        if path is not raw4:  # protocol 4 is refused at its first frame, before any import
            assert "GLOBAL" in str(info.value)
    assert not marker.exists()


def test_weights_only_pt_files_load(tmp_path):
    net = small_net()
    meta = {**META, "architecture": "dncnn", "config": net.config()}
    path = tmp_path / "legacy.pt"
    torch.save({"state_dict": net.state_dict(), "metadata": meta}, path)
    with pytest.raises(CheckpointError, match=r"no digest.*trust=True"):
        load_checkpoint(path)  # nothing can verify a .pt file: an explicit opt-in only
    loaded, got = load_checkpoint(path, trust=True)
    x = torch.rand(1, 1, 9, 9)
    with torch.no_grad():
        assert torch.equal(loaded(x, 0.0), net(x, 0.0))
    assert got["sigma"] == 0.05
    torch.save({"weights": net.state_dict()}, path)
    with pytest.raises(CheckpointError, match="state_dict"):
        load_checkpoint(path, trust=True)


def _write_raw(path: Path, tensors: dict, meta: dict | None) -> Path:
    save_file(
        tensors, str(path), metadata=None if meta is None else {"deq_explorer": json.dumps(meta)}
    )
    return path


def test_unknown_architecture_foreign_file_and_misfit_weights(tmp_path):
    net = small_net()
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    path = _write_raw(
        tmp_path / "a.safetensors", state, {"architecture": "resnet-9000", "config": {}}
    )
    with pytest.raises(CheckpointError, match=r"unknown architecture 'resnet-9000'.*dncnn"):
        load_checkpoint(path, trust=True)
    path = _write_raw(tmp_path / "b.safetensors", state, None)
    with pytest.raises(CheckpointError, match="not a DEQ Explorer checkpoint"):
        load_checkpoint(path, trust=True)
    wider = {**net.config(), "width": 16}
    path = _write_raw(tmp_path / "c.safetensors", state, {"architecture": "dncnn", "config": wider})
    with pytest.raises(CheckpointError, match=r"do not fit 'dncnn'.*size mismatch"):
        load_checkpoint(path, trust=True)
    deeper = {**net.config(), "depth": 6}
    path = _write_raw(
        tmp_path / "d.safetensors", state, {"architecture": "dncnn", "config": deeper}
    )
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path, trust=True)
    path = _write_raw(
        tmp_path / "e.safetensors", state, {"architecture": "dncnn", "config": {"x": 1}}
    )
    with pytest.raises(CheckpointError, match="no option 'x'"):
        load_checkpoint(path, trust=True)


def test_load_prior(tmp_path):
    net = small_net("unet")
    path = save_checkpoint(tmp_path / "my-unet.safetensors", net, META)
    prior = load_prior(path)
    assert isinstance(prior, CheckpointPrior) and isinstance(prior, Prior)
    assert prior.name == "my-unet" and prior.sigma == 0.05 and prior.metadata["mode"] == "awgn"
    assert prior.module is not None and not prior.module.training
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        # the prior runs channels-last: same values up to summation order
        assert torch.allclose(prior.denoise(x), net(x, 0.05), atol=1e-6)
        assert torch.allclose(prior.denoise(x, 0.2), net(x, 0.2), atol=1e-6)
    assert load_prior(path, name="other").name == "other"
    sr = save_checkpoint(tmp_path / "sr.safetensors", SRCNN(width=8), META)
    with pytest.raises(CheckpointError, match="not a denoiser"):
        load_prior(sr)


def test_register_checkpoint_makes_a_buildable_prior(tmp_path):
    net = small_net("unet")
    path = save_checkpoint(tmp_path / "net.safetensors", net, {**META, "name": "test-ckpt-unet"})
    name = register_checkpoint(path)
    try:
        assert name == "test-ckpt-unet" and name in priors.names()
        entry = priors.entry(name)
        assert entry.metadata["architecture"] == "unet" and entry.metadata["path"] == str(path)
        assert entry.options() == {"sigma": 0.05}
        prior = priors.build(name, device="cpu", dtype=torch.float64)
        x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(prior.denoise(x), net.double()(x, 0.05))
        assert priors.build(f"{name}:sigma=0.2").sigma == 0.2
        # re-training: the same file may be registered again; the new weights are used
        torch.manual_seed(5)
        retrained = build_net("unet", SMALL["unet"]).eval()
        save_checkpoint(path, retrained, {**META, "name": name})
        assert register_checkpoint(path) == name
        x = x.float()
        with torch.no_grad():
            assert torch.allclose(priors.build(name).denoise(x), retrained(x, 0.05), atol=1e-6)
        # another file may not take the name silently
        other = save_checkpoint(tmp_path / "other.safetensors", retrained, META)
        with pytest.raises(CheckpointError, match=r"already registered.*replace=True"):
            register_checkpoint(other, name)
        with pytest.raises(CheckpointError, match="already registered"):
            register_checkpoint(other, "tv")
        assert register_checkpoint(other, name, replace=True) == name
        assert priors.entry(name).metadata["path"] == str(other)
    finally:
        priors.unregister(name)


def test_register_shipped_skips_bad_files(tmp_path):
    save_checkpoint(tmp_path / "test-shipped-a.safetensors", small_net(), META)
    save_checkpoint(tmp_path / "test-shipped-b.safetensors", small_net("sn-dncnn"), META)
    (tmp_path / "test-shipped-bad.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "README.md").write_text("ignored")
    # a training run's best copy beside its checkpoint: neither registered nor a name clash
    save_checkpoint(tmp_path / "test-shipped-a.best.safetensors", small_net(), META)
    try:
        with pytest.warns(RuntimeWarning, match="test-shipped-bad"):
            names = register_shipped(tmp_path)
        assert names == ["test-shipped-a", "test-shipped-b"]
        assert all(n in priors.names() for n in names)
        assert "test-shipped-bad" not in priors.names()
    finally:
        for n in ("test-shipped-a", "test-shipped-b"):
            priors.unregister(n)


def test_package_shipped_priors_are_registered():
    from deq_explorer.priors import neural

    assert (ckpt.SHIPPED_DIR / "README.md").is_file()
    shipped = sorted(
        p.stem for p in ckpt.SHIPPED_DIR.glob("*.safetensors") if ".best." not in p.name
    )
    assert len(neural.SHIPPED) == len(shipped)
    assert all(name in priors.names() for name in neural.SHIPPED)


def test_load_backbone(tmp_path, monkeypatch):
    net = SRCNN(width=8, scale=2)
    path = save_checkpoint(tmp_path / "sr.safetensors", net, META)
    module, meta = ckpt.load_backbone(path)
    assert isinstance(module, SRCNN) and meta["architecture"] == "srcnn"
    monkeypatch.setattr(ckpt, "BACKBONE_DIR", tmp_path)
    assert ckpt.backbone_names() == ["sr"]
    by_name, _ = ckpt.load_backbone("sr")
    y = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        assert torch.equal(by_name(y), net(y))
    with pytest.raises(CheckpointError, match=r"no backbone .nope.*sr"):
        ckpt.load_backbone("nope")
    dn = save_checkpoint(tmp_path / "dn.safetensors", small_net("dncnn"), META)
    with pytest.raises(CheckpointError, match="denoiser, not a backbone"):
        ckpt.load_backbone(dn)


def test_shipped_backbones_load():
    for name in ckpt.backbone_names():
        _module, meta = ckpt.load_backbone(name)
        assert meta["mode"] == "backbone" and meta["steps"] > 0


def _rewrite_header(path: Path, out: Path, edit) -> Path:
    """Copy checkpoint ``path`` to ``out`` with ``edit(header)`` applied (not re-digested)."""
    from safetensors import safe_open
    from safetensors.torch import save as to_bytes

    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    out.write_bytes(to_bytes(tensors, metadata=edit(header)))
    return out


def test_the_digest_covers_metadata_and_cannot_be_dropped(tmp_path):
    good = save_checkpoint(tmp_path / "good.safetensors", small_net(), META)

    def louder(h):
        return {**h, "deq_explorer": h["deq_explorer"].replace('"sigma": 0.05', '"sigma": 0.5')}

    edited = _rewrite_header(good, tmp_path / "edited.safetensors", louder)
    with pytest.raises(CheckpointError, match="do not match the digest"):
        load_checkpoint(edited)
    with pytest.raises(CheckpointError, match="do not match the digest"):
        load_checkpoint(edited, trust=True)  # trust opts out of a *missing* digest only
    dropped = _rewrite_header(good, tmp_path / "dropped.safetensors",
                              lambda h: {k: v for k, v in h.items() if k != "digest"})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"has no digest.*trust=True"):
        load_checkpoint(dropped)
    assert load_checkpoint(dropped, trust=True)[1]["sigma"] == 0.05

    def v01(h):
        return {"deq_explorer": h["deq_explorer"], "sha256": "0" * 64}

    legacy = _rewrite_header(good, tmp_path / "legacy.safetensors", v01)
    with pytest.raises(CheckpointError, match=r"DEQ Explorer 0\.1.*weights only"):
        load_checkpoint(legacy)


def test_trust_from_the_environment(tmp_path, monkeypatch):
    good = save_checkpoint(tmp_path / "good.safetensors", small_net(), META)
    dropped = _rewrite_header(good, tmp_path / "dropped.safetensors",
                              lambda h: {k: v for k, v in h.items() if k != "digest"})  # fmt: skip
    monkeypatch.setenv("DEQ_EXPLORER_TRUST_CHECKPOINTS", "1")
    assert load_checkpoint(dropped)[1]["mode"] == "awgn"
    assert load_prior(dropped).sigma == 0.05
    monkeypatch.setenv("DEQ_EXPLORER_TRUST_CHECKPOINTS", "0")
    with pytest.raises(CheckpointError, match="has no digest"):
        load_checkpoint(dropped)


def test_a_crafted_config_builds_nothing(tmp_path, monkeypatch):
    """``width: 200000`` would be a 1.4 TB network: refused before any network is built."""
    built = []
    monkeypatch.setattr(ckpt, "build_net", lambda *a, **k: built.append(a) or build_net(*a, **k))
    good = save_checkpoint(tmp_path / "good.safetensors", small_net(), META)

    def crafted(width):
        def edit(h):
            record = json.loads(h["deq_explorer"])
            record["config"]["width"] = width
            return {"deq_explorer": json.dumps(record)}

        return _rewrite_header(good, tmp_path / f"w{width}.safetensors", edit)

    with pytest.raises(CheckpointError, match=r"width=200000.*bound 4096.*Nothing was built"):
        load_checkpoint(crafted(200000), trust=True)
    assert built == []
    with pytest.raises(CheckpointError, match=r"size mismatch.*Nothing was built"):
        load_checkpoint(crafted(4000), trust=True)  # in bounds, but not these weights
    assert len(built) == 1  # the meta-device skeleton only, never the real network


def test_a_backbone_is_refused_as_a_prior_with_advice(tmp_path):
    path = save_checkpoint(tmp_path / "sr.safetensors", SRCNN(scale=2, width=8), {"mode": "x"})
    with pytest.raises(CheckpointError, match=r"backbone.*not a denoiser.*mcnet-admm"):
        load_prior(path)
    with pytest.raises(CheckpointError, match=r"backbone.*mcnet-admm"):
        register_checkpoint(path, "sr-as-prior", verify=False)


def test_shipped_priors_register_from_their_headers(monkeypatch):
    """Registration reads headers only; a prior's file is verified when it is built."""
    loads = []

    def counted(*args):
        loads.append(args)
        return real(*args)

    real = ckpt._read_safetensors
    monkeypatch.setattr(ckpt, "_read_safetensors", counted)
    names = register_shipped()
    assert "dncnn-awgn" in names and loads == []
    priors.build("dncnn-awgn")  # building it loads and verifies the file
    assert len(loads) == 1


class _Halve(torch.nn.Module):
    """A pack's architecture: one convolution, its config as constructor keywords."""

    role = "denoiser"

    def __init__(self, channels: int = 1, width: int = 2) -> None:
        super().__init__()
        self.channels, self.width = channels, width
        self.conv = torch.nn.Conv2d(channels, channels, 2 * width + 1, padding=width)

    def config(self) -> dict:
        return {"channels": self.channels, "width": self.width}

    def forward(self, x, sigma=None):
        return x - self.conv(x)


def test_a_registered_architecture_round_trips_through_a_checkpoint(tmp_path):
    from deq_explorer.priors.nets import architectures

    architectures.register("test-halve", _Halve, metadata={"config": {"width": 1}})
    try:
        net = build_net("test-halve")  # metadata["config"] fills what the config leaves out
        assert net.config() == {"channels": 1, "width": 1}
        path = save_checkpoint(tmp_path / "halve.safetensors", net, META)
        assert ckpt.read_metadata(path)["architecture"] == "test-halve"
        module, meta = load_checkpoint(path)
        assert type(module) is _Halve and meta["config"] == net.config()
        for key, value in net.state_dict().items():
            assert torch.equal(module.state_dict()[key], value)
        name = register_checkpoint(path, "test-halve-prior", replace=True)
        x = torch.rand(1, 1, 8, 8)
        torch.testing.assert_close(priors.build(name, device="cpu").denoise(x), net(x))
        priors.unregister(name)
    finally:
        architectures.unregister("test-halve")
    with pytest.raises(CheckpointError, match="unknown architecture 'test-halve'"):
        load_checkpoint(path)
