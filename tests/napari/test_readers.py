"""The NIfTI reader opens a volume in napari as a slice stack with its voxel size."""

from __future__ import annotations

import nibabel
import numpy as np
import pytest

from deq_explorer._napari.readers import get_reader


@pytest.fixture
def volume_file(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.random((12, 10, 6)).astype(np.float32) * 900
    image = nibabel.Nifti1Image(volume, np.diag([0.5, 0.8, 2.0, 1.0]))
    image.header.set_zooms((0.5, 0.8, 2.0))
    path = tmp_path / "head.nii.gz"
    nibabel.save(image, path)
    return path, volume


def test_napari_opens_a_nifti_volume_with_its_voxel_size(make_napari_viewer, volume_file):
    path, volume = volume_file
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="deq-explorer")
    assert layer.name == "head"
    assert layer.data.shape == (6, 10, 12)  # slices along the volume's third axis
    np.testing.assert_allclose(layer.scale, (2.0, 0.8, 0.5))
    assert 0 <= layer.data.min() and layer.data.max() == 1.0
    # the stack is the volume, scaled to [0, 1], with its second axis shown upwards
    top_row = volume[:, -1, 0] / np.percentile(volume, 99.5)
    np.testing.assert_allclose(layer.data[0, 0, :], np.clip(top_row, 0, 1), rtol=1e-5)


def test_the_reader_declines_other_files(tmp_path):
    assert get_reader(str(tmp_path / "x.png")) is None
    assert get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.png")]) is None
    assert get_reader(str(tmp_path / "a.nii")) is not None
