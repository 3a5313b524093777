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


def test_the_run_reader_takes_only_saved_runs(tmp_path):
    from deq_explorer._napari.readers import get_run_reader

    np.savez(tmp_path / "plain.npz", x=np.zeros(3), y=np.zeros(3))  # no config
    np.savez(tmp_path / "pickled.npz", x=np.zeros(3), config=np.array([{"a": 1}], object))
    np.savez(tmp_path / "text.npz", x=np.zeros(3), config=np.array("not json"))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    for name in ("plain", "pickled", "text", "broken"):
        assert get_run_reader(str(tmp_path / f"{name}.npz")) is None, name
    assert get_run_reader(str(tmp_path / "x.nii")) is None


def test_a_cli_run_reopens_in_napari(make_napari_viewer, tmp_path, capsys):
    """``reconstruct --out`` writes what the reader opens: y, reference, x with its history."""
    from deq_explorer import cli
    from deq_explorer._napari._problems import KEY

    out = tmp_path / "cli run.npz"
    argv = ["reconstruct", "sample:phantom", "--operator", "mri:rate=0.3", "--max-iter", "4",
            "--tol", "0", "--out", str(out), "--quiet"]  # fmt: skip
    assert cli.main(argv) == 0
    viewer = make_napari_viewer()
    layers = viewer.open(str(out), plugin="deq-explorer")
    assert [layer.name for layer in layers] == [
        "y · cli run", "reference · cli run", "tv · cli run"
    ]  # fmt: skip
    y, reference, x = layers
    with np.load(out, allow_pickle=False) as saved:
        assert np.iscomplexobj(saved["y"]) and y.data.dtype == np.float32  # shown as |k-space|
        np.testing.assert_allclose(x.data, saved["x"][0])
        np.testing.assert_allclose(reference.data, saved["reference"][0])
        meta = x.metadata[KEY]
        assert meta["history"]["k"] == [1, 2, 3, 4]
        np.testing.assert_allclose(meta["history"]["residual"], saved["history"]["residual"])
    assert meta["config"]["operator"] == "mri:rate=0.3" and meta["status"] == "max_iter"
    from deq_explorer._napari import _problems

    rerun = _problems.problem_of(y, viewer.layers)  # the saved measurement runs again
    assert rerun.solve_operator == "mri:rate=0.3" and rerun.y.is_complex()


def test_a_kspace_file_opens_as_a_measurement_and_reconstructs(make_napari_viewer, qtbot):
    from deq_explorer._napari import _problems
    from deq_explorer._napari.reconstruct import ReconstructPanel
    from deq_explorer.sample_data import sample_path

    path = str(sample_path("phantom_kspace_radial30.npz"))
    viewer = make_napari_viewer()
    (y,) = viewer.open(path, plugin="deq-explorer")
    assert _problems.is_measurement(y) and y.data.shape == (256, 256)
    problem = _problems.problem_of(y, viewer.layers)
    assert problem.y.is_complex() and problem.solve_operator == "mri:rate=0.3"
    panel = ReconstructPanel(viewer)
    panel.reset_choices()
    panel.measurement.value = y
    panel.prior.choice.value = "tv"
    panel.max_iter.value = 5
    assert panel.run()
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=60_000)
    assert panel.last.k == 5 and panel.last.psnr is None  # no reference in the file


def test_the_measurement_reader_needs_an_operator(tmp_path):
    from deq_explorer._napari.readers import get_run_reader, read_measurements

    np.savez(tmp_path / "bare.npz", y=np.zeros((8, 8), np.complex64))
    np.savez(tmp_path / "named.npz", y=np.zeros((8, 8), np.complex64), operator="mri:rate=0.3")
    np.savez(tmp_path / "listed.npz", y=np.zeros((8, 8)), operator=np.array(["a", "b"]))
    assert get_run_reader(str(tmp_path / "bare.npz")) is None  # which operator? not guessed
    assert get_run_reader(str(tmp_path / "listed.npz")) is None
    assert get_run_reader(str(tmp_path / "named.npz")) is read_measurements
