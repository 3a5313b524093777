"""Training images: photos, MRI volumes' slices or a folder; random crops, a validation split.

Every draw is a pure function of ``(seed, step, rank)``: the batch of step
``k`` is the same whether a run got there uninterrupted or was resumed, and
each DDP process sees its own shard.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from deq_explorer.errors import ConfigError
from deq_explorer.images import load_image, load_sample, sample_names, to_gray
from deq_explorer.volumes import MNI152, is_volume, load_volume, mni152_path, volume_slices

__all__ = ["BUILTIN", "HELD_OUT", "ImageData", "generator", "load_images"]

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")  # .npy only as single files
#: test images no built-in training run ever sees (the experiments and demos use them)
HELD_OUT = ("camera", "astronaut", "brain", "phantom")
#: the offline photos (scikit-image, PyWavelets, matplotlib; images.SAMPLES) minus the held-out ones
BUILTIN = tuple(name for name in sample_names() if name not in HELD_OUT)


def generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator seeded by mixing ``seed`` and ``keys`` (step, rank, stream ...)."""
    words = [int(k) % 2**32 for k in (seed, *keys)]  # negative keys name auxiliary streams
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _channels(image: np.ndarray, channels: int) -> Tensor:
    """``(C, H, W)`` in [0, 1] → tensor ``(channels, H, W)`` (luma or repeated gray)."""
    if channels == 1:
        image = to_gray(image)
    t = torch.from_numpy(image)
    return t.expand(channels, *t.shape[1:]).contiguous() if t.shape[0] != channels else t


def load_images(source: str, channels: int = 1, side: int = 0) -> list[tuple[str, Tensor]]:
    """Load every image of ``source``.

    Parameters
    ----------
    source : str
        ``"builtin"`` (the offline photos), ``"mni152"`` (slices of the MNI152 T1
        template in nilearn's wheel), a folder (searched recursively for
        png/jpg/tif/bmp images and ``.nii``/``.nii.gz`` volumes), or one volume
        file; several sources joined by ``"+"`` are concatenated.
    channels : int
        1 (colour images are converted to luminance) or 3 (gray images are repeated).
    side : int
        Zero-pad volume slices to at least ``side``² (MRI's background is zero);
        photos are never padded.

    Returns
    -------
    list of (name, Tensor)
        Images ``(channels, H, W)`` float32 in [0, 1], in a fixed (sorted) order.
        A volume gives every second slice of its three orientations
        (:func:`deq_explorer.volumes.volume_slices`), named ``FILE:axisA-I``.
    """
    if "+" in source:
        return [item for part in source.split("+") for item in load_images(part, channels, side)]
    if source == "builtin":
        return [(n, _channels(load_sample(n), channels)) for n in BUILTIN]
    if source == MNI152:
        return _slices(mni152_path(), MNI152, channels, side)
    path = Path(source).expanduser()
    if is_volume(path):
        return _slices(path, path.name, channels, side)
    if not path.is_dir():
        raise ConfigError(
            f"data {source!r} is neither 'builtin', 'mni152', a volume file nor an existing "
            "folder of images"
        )
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and (p.suffix.lower() in SUFFIXES or is_volume(p))
    )
    if not files:
        raise ConfigError(f"no png/jpg/tif images or .nii(.gz) volumes found under {source!r}")
    out = []
    for p in files:
        name = str(p.relative_to(path))
        if is_volume(p):
            out += _slices(p, name, channels, side)
        else:
            out.append((name, _channels(load_image(p), channels)))
    return out


def _slices(path: Path, name: str, channels: int, side: int) -> list[tuple[str, Tensor]]:
    volume, _ = load_volume(path)
    return [(f"{name}:{n}", _channels(s, channels)) for n, s in volume_slices(volume, side=side)]


def _centre(x: Tensor, side: int) -> Tensor:
    h, w = x.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top : top + side, left : left + side]


@dataclass(frozen=True)
class ImageData:
    """Training images of one process and the shared validation crops.

    Attributes
    ----------
    train : list of Tensor
        This rank's training images ``(C, H, W)`` (each at least ``crop`` on a side).
    val : Tensor
        Validation centre crops ``(V, C, val_crop, val_crop)`` (``V`` may be 0).
    names : tuple of str
        Names of the training images of this rank (for the checkpoint metadata).
    val_names : tuple of str
        Names of the validation images.
    total : int
        Training images over all ranks.
    """

    train: list[Tensor]
    val: Tensor
    names: tuple[str, ...]
    val_names: tuple[str, ...]
    total: int

    @classmethod
    def load(
        cls,
        source: str,
        *,
        channels: int,
        crop: int,
        val_images: int,
        val_crop: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> ImageData:
        """Load ``source``, hold out ``val_images`` images (seeded choice), shard the rest."""
        images = load_images(source, channels, side=max(crop, val_crop))
        if len(images) <= val_images:
            raise ConfigError(
                f"data {source!r} has {len(images)} image(s); need more than val_images="
                f"{val_images} (one at least for training)"
            )
        order = torch.randperm(len(images), generator=generator(seed, -1)).tolist()
        held = [images[i] for i in order[:val_images]]
        rest = [images[i] for i in sorted(order[val_images:])]
        small = [n for n, x in held if min(x.shape[-2:]) < val_crop]
        if small:
            raise ConfigError(
                f"validation image(s) {small} are smaller than val_crop={val_crop}; lower val_crop"
            )
        kept = [(n, x) for n, x in rest if min(x.shape[-2:]) >= crop]
        if len(kept) < len(rest):
            dropped = sorted({n for n, _ in rest} - {n for n, _ in kept})
            warnings.warn(f"skipped images smaller than crop={crop}: {dropped}", stacklevel=2)
        if not kept:
            raise ConfigError(f"no training image of {source!r} is at least {crop}×{crop}")
        total = len(kept)
        if total >= world_size:
            kept = kept[rank::world_size]
        val = torch.stack([_centre(x, val_crop) for _, x in held]) if held else torch.empty(0)
        return cls(
            train=[x for _, x in kept],
            val=val,
            names=tuple(n for n, _ in kept),
            val_names=tuple(n for n, _ in held),
            total=total,
        )

    def steps_per_epoch(self, batch: int) -> int:
        """Steps that visit every training image of this rank once."""
        return math.ceil(len(self.train) / batch)

    def batch(
        self, step: int, *, batch: int, crop: int, seed: int, rank: int = 0, gamma: float = 0.0
    ) -> Tensor:
        """Crops of step ``step`` (0-based): ``(batch, C, crop, crop)``, randomly flipped.

        Images are visited in a fresh seeded permutation each epoch; crop
        positions and flips are drawn from a generator of ``(seed, step, rank)``;
        with ``gamma > 0`` each crop also gets an intensity curve ``x ↦ x^g``,
        ``log g`` uniform in ``[−gamma, gamma]``, from a stream of its own (the
        crops are those of ``gamma = 0``).
        """
        n = len(self.train)
        spe = self.steps_per_epoch(batch)
        epoch, within = divmod(step, spe)
        perm = torch.randperm(n, generator=generator(seed, epoch, rank, 1)).tolist()
        idx = [perm[(within * batch + i) % n] for i in range(batch)]
        g = generator(seed, step, rank, 2)
        curves = torch.rand(batch, generator=generator(seed, step, rank, 4)) * 2 - 1
        out = []
        for i, u in zip(idx, curves.tolist(), strict=True):
            x = self.train[i]
            h, w = x.shape[-2:]
            top = int(torch.randint(0, h - crop + 1, (1,), generator=g))
            left = int(torch.randint(0, w - crop + 1, (1,), generator=g))
            c = x[:, top : top + crop, left : left + crop]
            flips = torch.randint(0, 2, (2,), generator=g).tolist()
            if flips[0]:
                c = c.flip(-1)
            if flips[1]:
                c = c.flip(-2)
            if gamma > 0:
                c = c.clamp_min(0) ** math.exp(gamma * u)
            out.append(c)
        return torch.stack(out)
