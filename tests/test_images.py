"""Reading images: offline samples with provenance, every file layout, and bad input."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import skimage.io

from deq_explorer.images import (
    MIN_SIZE,
    ImageError,
    Scaling,
    center_crop,
    crop_to_multiple,
    load_image,
    load_sample,
    normalise,
    sample_info,
    sample_names,
    suggested_normalisation,
    to_gray,
)

RNG = np.random.default_rng(0)
_Y, _X = np.mgrid[0:40, 0:48] / 48.0
SMOOTH = 0.5 + 0.4 * np.sin(4 * _X) * np.cos(3 * _Y)  # smooth: survives jpeg
GRAY8 = (SMOOTH * 255).astype(np.uint8)
RGB8 = (np.stack([SMOOTH, SMOOTH[::-1], 1 - SMOOTH], -1) * 255).astype(np.uint8)
GRAY16 = (RNG.random((40, 48)) * 65535).astype(np.uint16)


def _save(path: Path, array: np.ndarray) -> Path:
    skimage.io.imsave(path, array, check_contrast=False)
    return path


def _check(image: np.ndarray, channels: int, hw: tuple[int, int] = (40, 48)) -> None:
    assert image.dtype == np.float32
    assert image.shape == (channels, *hw)
    assert image.flags.c_contiguous
    assert 0.0 <= image.min() and image.max() <= 1.0


# -- samples ---------------------------------------------------------------------------


def test_required_samples_are_offered():
    assert {"camera", "astronaut", "brain", "phantom"} <= set(sample_names())


@pytest.mark.parametrize("name", sample_names())
def test_every_sample_loads_with_provenance(name):
    image = load_image(f"sample:{name}")
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[0] in (1, 3)
    assert min(image.shape[1:]) >= MIN_SIZE
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert image.max() - image.min() > 0.2  # real content, not a blank array
    info = sample_info(name)
    assert info["name"] == name and info["shape"] == image.shape
    assert isinstance(info["source"], str) and len(info["source"]) > 10


def test_brain_is_the_real_mri_slice_read_with_the_right_byte_order():
    brain = load_sample("brain")[0]
    assert brain.shape == (256, 256)
    assert brain[:16, :16].mean() < 0.05  # air around the head is dark
    assert brain[112:144, 112:144].mean() > 0.3  # tissue in the centre is bright
    # byte-swapped uint16 would turn smooth tissue into noise: neighbours would differ wildly
    assert np.abs(np.diff(brain, axis=1)).mean() < 0.05
    assert "s1045" in sample_info("brain")["source"]


def test_unknown_sample_lists_the_known_ones():
    with pytest.raises(ImageError, match="unknown sample 'nope'") as err:
        load_image("sample:nope")
    assert all(name in str(err.value) for name in ("camera", "brain", "phantom"))


# -- files -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_gray_and_rgb_files(tmp_path, suffix):
    gray = load_image(_save(tmp_path / f"g{suffix}", GRAY8))
    rgb = load_image(str(_save(tmp_path / f"c{suffix}", RGB8)))
    _check(gray, 1)
    _check(rgb, 3)
    atol = 0.06 if suffix == ".jpg" else 1e-6  # jpeg is lossy
    np.testing.assert_allclose(gray[0], GRAY8 / 255, atol=atol)
    np.testing.assert_allclose(rgb, np.moveaxis(RGB8, -1, 0) / 255, atol=atol)


def test_rgba_drops_alpha(tmp_path):
    alpha = np.full((40, 48, 1), 128, np.uint8)
    image = load_image(_save(tmp_path / "rgba.png", np.concatenate([RGB8, alpha], -1)))
    _check(image, 3)
    np.testing.assert_allclose(image, np.moveaxis(RGB8, -1, 0) / 255, atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_files_use_the_full_range(tmp_path, suffix):
    image = load_image(_save(tmp_path / f"g16{suffix}", GRAY16))
    _check(image, 1)
    np.testing.assert_allclose(image[0], GRAY16 / 65535, atol=1e-6)


@pytest.mark.parametrize("layout", ["hw", "hwc", "chw", "1hw", "hw1"], ids=lambda s: s.upper())
def test_npy_layouts(tmp_path, layout):
    rgb = RNG.random((3, 40, 48)).astype(np.float32)
    arrays = {
        "hw": (rgb[0], rgb[:1]),
        "hwc": (np.moveaxis(rgb, 0, -1), rgb),
        "chw": (rgb, rgb),
        "1hw": (rgb[:1], rgb[:1]),
        "hw1": (rgb[0][..., None], rgb[:1]),
    }
    array, expected = arrays[layout]
    np.save(tmp_path / "a.npy", array)
    image = load_image(tmp_path / "a.npy")
    _check(image, expected.shape[0])
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize(
    "array",
    [
        np.linspace(-3.0, 5.0, 40 * 48).reshape(40, 48),  # float outside [0, 1]
        np.arange(40 * 48, dtype=np.int64).reshape(40, 48) % 256,  # wide integers
        np.arange(40 * 48, dtype=np.int16).reshape(40, 48) - 1000,  # signed integers
    ],
    ids=["float", "int64", "int16"],
)
def test_other_arrays_are_rescaled_by_their_range(tmp_path, array):
    np.save(tmp_path / "a.npy", array)
    image = load_image(tmp_path / "a.npy")
    _check(image, 1)
    assert image.min() == 0.0 and image.max() == 1.0
    expected = (array - array.min()) / (array.max() - array.min())
    np.testing.assert_allclose(image[0], expected, atol=1e-6)


def test_bool_npy_is_a_binary_image(tmp_path):
    mask = RNG.random((40, 48)) > 0.5
    np.save(tmp_path / "m.npy", mask)
    np.testing.assert_array_equal(load_image(tmp_path / "m.npy")[0], mask.astype(np.float32))


# -- bad input -------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"does not exist.*sample:NAME"):
        load_image(tmp_path / "nothing.png")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path)


def test_unsupported_suffix_lists_supported_ones(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match=r"not a supported image file.*\.png.*\.npy"):
        load_image(tmp_path / "notes.txt")


@pytest.mark.parametrize(
    "content", [b"this is a text file, not a picture\n", RNG.bytes(2000)], ids=["text", "random"]
)
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".npy"])
def test_non_image_content_is_refused(tmp_path, content, suffix):
    path = tmp_path / f"fake{suffix}"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=r"cannot read .*fake.*damaged or not an image"):
        load_image(path)


@pytest.mark.parametrize(
    "shape", [(1, 1), (0, 0), (MIN_SIZE - 1, 40), (40, 1, 3)], ids=["1px", "empty", "thin", "line"]
)
def test_too_small_images(tmp_path, shape):
    np.save(tmp_path / "small.npy", np.zeros(shape, np.float32))
    with pytest.raises(ImageError, match=f"at least {MIN_SIZE}x{MIN_SIZE}"):
        load_image(tmp_path / "small.npy")


def test_one_pixel_png(tmp_path):
    with pytest.raises(ImageError, match="1x1; at least"):
        load_image(_save(tmp_path / "dot.png", np.zeros((1, 1), np.uint8)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels(tmp_path, bad):
    array = RNG.random((40, 48))
    array[3, 5] = bad
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ImageError, match="NaN or Inf"):
        load_image(tmp_path / "bad.npy")


def test_pickled_npy_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    np.save(tmp_path / "evil.npy", np.array([Payload(), 1], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "evil.npy")
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload()))  # the payload is live: loading it would have run it
    assert marker.exists()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (RNG.random((40, 48)) + 1j, "complex"),
        (np.array(["a"] * 100).reshape(10, 10), "not a numeric image"),
        (RNG.random(400), "gray or RGB"),
        (RNG.random((2, 3, 40, 48)), "gray or RGB"),
        (RNG.random((40, 48, 5)), "gray or RGB"),
    ],
    ids=["complex", "strings", "1d", "4d", "5-channel"],
)
def test_arrays_that_are_not_images(tmp_path, array, message):
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(ImageError, match=message):
        load_image(tmp_path / "a.npy")


# -- helpers ---------------------------------------------------------------------------


def test_to_gray_uses_luma_weights():
    rgb = np.stack([np.full((8, 8), v, np.float32) for v in (1.0, 0.0, 0.0)])
    np.testing.assert_allclose(to_gray(rgb), np.full((1, 8, 8), 0.299), rtol=1e-6)
    gray = rgb[:1]
    assert to_gray(gray) is gray


def test_crop_to_multiple():
    image = RNG.random((1, 47, 50)).astype(np.float32)
    cropped = crop_to_multiple(image, 3)
    assert cropped.shape == (1, 45, 48)
    np.testing.assert_array_equal(cropped, image[:, :45, :48])
    with pytest.raises(ImageError, match="smaller than the factor"):
        crop_to_multiple(image[:, :2], 4)


def test_center_crop():
    image = RNG.random((3, 47, 50)).astype(np.float32)
    cropped = center_crop(image, 20)
    assert cropped.shape == (3, 20, 20) and cropped.flags.c_contiguous
    np.testing.assert_array_equal(cropped, image[:, 13:33, 15:35])
    with pytest.raises(ImageError, match="smaller than the crop"):
        center_crop(image, 48)


TWELVE_BIT = (RNG.random((1, 40, 48)) * 4095).astype(np.uint16)


@pytest.mark.parametrize("method", ["percentile", "minmax"])
def test_12_bit_data_spans_the_unit_range_and_inverts(method):
    x, scaling = normalise(TWELVE_BIT, method)
    assert x.dtype == np.float32 and x.shape == TWELVE_BIT.shape
    assert x.min() == 0.0 and x.max() == 1.0  # not near-black, as ÷ 65535 makes it
    assert isinstance(scaling, Scaling) and scaling.method == method
    inside = (x > 0) & (x < 1)
    np.testing.assert_allclose(scaling.invert(x)[inside], TWELVE_BIT[inside], atol=1e-3)
    assert Scaling(**scaling.as_dict()) == scaling and method in scaling.describe()


def test_percentiles_clip_the_tails():
    a = np.linspace(0, 1, 1001)[None, None].repeat(8, 1).astype(np.float32) * 10 - 5
    x, scaling = normalise(a, "percentile", low=10, high=90)
    assert (x == 0).mean() == pytest.approx(0.1, abs=0.01)
    assert scaling.offset == pytest.approx(-4.0) and scaling.scale == pytest.approx(1 / 8.0)


def test_none_keeps_unit_floats_and_divides_integers_by_their_type():
    x, scaling = normalise(GRAY8, "none")
    np.testing.assert_allclose(x, GRAY8 / 255.0, atol=1e-6)
    assert scaling.scale == pytest.approx(1 / 255)
    x, _ = normalise(SMOOTH, "none")
    np.testing.assert_allclose(x, SMOOTH, atol=1e-6)
    with pytest.raises(ImageError, match=r"outside \[0, 1\]"):
        normalise(SMOOTH * 3 - 1, "none")
    with pytest.raises(ImageError, match="unknown normalisation"):
        normalise(SMOOTH, "zscore")
    with pytest.raises(ImageError, match="NaN"):
        normalise(np.full((8, 8), np.nan), "minmax")


def test_a_constant_image_normalises_to_zeros():
    x, scaling = normalise(np.full((8, 8), 7.0), "percentile")
    assert not x.any() and scaling.invert(x).max() == 7.0


@pytest.mark.parametrize(
    ("array", "method"),
    [(GRAY8, "none"), (GRAY16, "percentile"), (TWELVE_BIT, "percentile"),
     (SMOOTH, "none"), (SMOOTH * 3 - 1, "percentile"), (GRAY8 > 100, "none")],
)  # fmt: skip
def test_suggested_normalisation(array, method):
    assert suggested_normalisation(array) == method
