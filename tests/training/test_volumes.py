"""MRI volumes as training data: NIfTI reading, slicing, padding, the MNI152 template."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest
import torch

from deq_explorer.training import TrainConfig
from deq_explorer.training.data import ImageData, load_images
from deq_explorer.volumes import VolumeError, load_volume, mni152_path, volume_slices


def _ellipsoid(shape: tuple[int, int, int] = (20, 24, 16), value: float = 800.0) -> np.ndarray:
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = sum(g**2 for g in grid) < 0.8
    return np.where(inside, value, 0.0).astype(np.float32)


def _save(path: Path, volume: np.ndarray, zooms=(1.0, 1.2, 2.0)) -> Path:
    image = nibabel.Nifti1Image(volume, np.diag([*zooms, 1.0]))
    image.header.set_zooms((*zooms, 1.0)[: volume.ndim])
    nibabel.save(image, path)
    return path


def test_volume_reads_with_its_voxel_size(tmp_path: Path) -> None:
    path = _save(tmp_path / "v.nii.gz", _ellipsoid())
    volume, spacing = load_volume(path)
    assert volume.shape == (20, 24, 16) and volume.dtype == np.float32
    assert spacing == pytest.approx((1.0, 1.2, 2.0))


def test_slices_three_orientations_scaled_padded_and_filtered() -> None:
    volume = _ellipsoid()
    slices = volume_slices(volume, stride=1, min_foreground=0.2, side=32)
    axes = {name.split("-")[0] for name, _ in slices}
    assert axes == {"axis0", "axis1", "axis2"}
    assert all(s.shape == (1, 32, 32) for _, s in slices)  # zero-padded, centred
    assert max(float(s.max()) for _, s in slices) == 1.0  # divided by the 99.5th percentile
    # the edge slices hold (almost) no ellipsoid and are dropped
    every = sum(volume.shape)
    assert 0 < len(slices) < every
    assert "axis0-000" not in dict(slices)
    unpadded = volume_slices(volume, stride=2)
    assert {s.shape for n, s in unpadded if n.startswith("axis2")} == {(1, 24, 20)}


def test_folder_of_volumes_and_images_and_joined_sources(tmp_path: Path, image_dir: Path) -> None:
    _save(tmp_path / "a.nii", _ellipsoid())
    _save(tmp_path / "sub.nii.gz", _ellipsoid(value=3.0))
    images = load_images(str(tmp_path), 1, side=32)
    assert images and all(name.split(":")[0] in ("a.nii", "sub.nii.gz") for name, _ in images)
    one = load_images(str(tmp_path / "a.nii"), 1, side=32)
    assert [n for n, _ in one] == [n for n, _ in images if n.startswith("a.nii")]
    joined = load_images(f"{tmp_path / 'a.nii'}+{image_dir}", 1)
    assert len(joined) == len(one) + len(load_images(str(image_dir), 1))
    # every slice of the joined set can be cropped: slices are padded to the crop
    data = ImageData.load(str(tmp_path), channels=1, crop=32, val_images=1, val_crop=32, seed=0)
    assert data.batch(0, batch=3, crop=32, seed=0).shape == (3, 1, 32, 32)


def test_intensity_augmentation_is_seeded_and_keeps_the_range(image_dir: Path) -> None:
    data = ImageData.load(str(image_dir), channels=1, crop=16, val_images=1, val_crop=16, seed=0)
    plain = data.batch(4, batch=2, crop=16, seed=0)
    a = data.batch(4, batch=2, crop=16, seed=0, gamma=0.5)
    b = data.batch(4, batch=2, crop=16, seed=0, gamma=0.5)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, plain)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    # x ↦ x^g keeps the order of the pixels of each crop
    order = plain.flatten(1).argsort(1)
    assert (a.flatten(1).gather(1, order).diff(dim=1) >= -1e-6).all()
    with pytest.raises(ValueError, match="augment_gamma"):
        TrainConfig(augment_gamma=-0.1)


def test_mni152_template_from_nilearn_is_the_builtin_mri_data() -> None:
    assert mni152_path().name.startswith("mni_icbm152_t1")
    images = load_images("mni152", 1, side=256)
    assert len(images) > 100
    assert {tuple(x.shape) for _, x in images} == {(1, 256, 256)}


def test_missing_nibabel_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    path = _save(tmp_path / "v.nii", _ellipsoid())
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(VolumeError, match=r"deq-explorer\[mri\]"):
        load_volume(path)


def test_bad_volumes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match="does not exist"):
        load_volume(tmp_path / "none.nii")
    (tmp_path / "junk.nii").write_bytes(b"not a nifti file")
    with pytest.raises(VolumeError, match="cannot read"):
        load_volume(tmp_path / "junk.nii")
    _save(tmp_path / "flat.nii", np.zeros((4, 5), np.float32)[..., None, None].repeat(2, 3))
    with pytest.raises(VolumeError, match="expected a 3-D volume"):
        load_volume(tmp_path / "flat.nii")
    with pytest.raises(VolumeError, match="empty"):
        volume_slices(np.zeros((4, 4, 4), np.float32))
