"""Reading images: files (png/jpg/tif/npy) and the offline samples shipped in installed packages.

Every image comes back as a float32 array ``(C, H, W)`` with values in [0, 1] and
``C`` = 1 (gray) or 3 (RGB). Nothing is ever downloaded: the samples come from
scikit-image, PyWavelets and matplotlib wheels.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deq_explorer.errors import ImageError

__all__ = [
    "MIN_SIZE",
    "NORMALISATIONS",
    "SAMPLES",
    "ImageError",
    "Scaling",
    "center_crop",
    "crop_to_multiple",
    "load_image",
    "load_measurement",
    "load_sample",
    "measurement_spec",
    "normalise",
    "sample_info",
    "sample_names",
    "suggested_normalisation",
    "to_gray",
]

#: smallest accepted side, in pixels
MIN_SIZE = 8
SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _pywt(name: str) -> np.ndarray:
    import pywt.data

    return getattr(pywt.data, name)()


def _grace_hopper() -> np.ndarray:
    import matplotlib.image
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return matplotlib.image.imread(f, format="jpg")


def _brain() -> np.ndarray:
    """matplotlib's ``s1045.ima.gz``: one 256×256 slice of a head MRI, big-endian uint16."""
    from matplotlib import cbook

    path = cbook.get_sample_data("s1045.ima.gz", asfileobj=False)
    with gzip.open(path) as f:
        raw = np.frombuffer(f.read(), dtype=">u2")
    return raw.reshape(256, 256).astype(np.float32)


def _phantom() -> np.ndarray:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return resize(shepp_logan_phantom(), (256, 256), anti_aliasing=True).astype(np.float32)


_SKIMAGE_PHOTOS = (
    "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "coins", "moon",
    "clock", "hubble_deep_field", "text", "page",
)  # fmt: skip
_SKIMAGE = "scikit-image sample data (skimage.data.{name})"
#: name -> (loader, provenance)
SAMPLES: dict[str, tuple[object, str]] = {
    "camera": (lambda: _skimage("camera"), _SKIMAGE.format(name="camera") + ", public domain"),
    "astronaut": (
        lambda: _skimage("astronaut"),
        _SKIMAGE.format(name="astronaut") + ", NASA, public domain",
    ),
    "brain": (
        _brain,
        "real head MRI slice s1045.ima.gz shipped with matplotlib (cbook.get_sample_data)",
    ),
    "phantom": (_phantom, "Shepp-Logan phantom (skimage.data.shepp_logan_phantom), 256x256"),
    **{
        name: (lambda name=name: _skimage(name), _SKIMAGE.format(name=name))
        for name in _SKIMAGE_PHOTOS
    },
    "aero": (lambda: _pywt("aero"), "PyWavelets sample data (pywt.data.aero)"),
    "ascent": (lambda: _pywt("ascent"), "PyWavelets sample data (pywt.data.ascent)"),
    "grace_hopper": (_grace_hopper, "matplotlib sample data grace_hopper.jpg"),
}


def sample_names() -> list[str]:
    """Names accepted as ``sample:NAME``."""
    return list(SAMPLES)


def sample_info(name: str) -> dict[str, object]:
    """Provenance of a sample: ``{"name", "source", "shape"}``."""
    image = load_sample(name)
    return {"name": name, "source": SAMPLES[name][1], "shape": tuple(image.shape)}


def load_sample(name: str) -> np.ndarray:
    """A named offline sample as ``(C, H, W)`` float32 in [0, 1]."""
    if name not in SAMPLES:
        raise ImageError(f"unknown sample {name!r}; known samples: {', '.join(SAMPLES)}")
    loader = SAMPLES[name][0]
    return _normalise(np.asarray(loader()), f"sample:{name}")


def load_image(src: str | Path) -> np.ndarray:
    """Read a png/jpg/tif/npy file or ``"sample:NAME"``.

    Returns
    -------
    ndarray
        float32 ``(C, H, W)`` in [0, 1], C = 1 or 3. 8- and 16-bit images are divided
        by 255 and 65535; booleans become 0/1; any other array (float, signed or
        wide integers) is kept if it lies in [0, 1] and rescaled by its range
        otherwise; RGBA drops alpha. ``.npy`` arrays may be
        ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``.

    Raises
    ------
    ImageError
        Missing or unreadable file, not an image, smaller than 8×8, NaN/Inf pixels.
    """
    src = str(src)
    if src.startswith("sample:"):
        return load_sample(src.removeprefix("sample:"))
    path = Path(src).expanduser()
    if not path.exists():
        raise ImageError(
            f"image file {src!r} does not exist (or use sample:NAME, e.g. sample:camera)"
        )
    if not path.is_file():
        raise ImageError(f"{src!r} is not a file; give the path of one image file")
    if path.suffix.lower() not in SUFFIXES:
        raise ImageError(f"{src!r} is not a supported image file; use one of {', '.join(SUFFIXES)}")
    if path.stat().st_size == 0:
        raise ImageError(f"{src!r} is an empty file (0 bytes): save the image again")
    try:
        if path.suffix.lower() == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            import skimage.io

            data = skimage.io.imread(path)
    except Exception as exc:  # any reader failure means "not an image we can use"
        # the reader's first line only: what follows is its advice to install plugins, which
        # cannot make a damaged or mis-named file readable
        reason = (str(exc).strip().splitlines() or [""])[0].rstrip(" :.(")
        raise ImageError(
            f"cannot read {src!r}: the file is damaged or not an image (no readable "
            f"{path.suffix.lower()} data; {type(exc).__name__}: {reason}); save it again as "
            "png/tif, or as a numeric .npy array"
        ) from None
    return _normalise(np.asarray(data), src)


def measurement_spec(src: str | Path) -> dict[str, Any] | None:
    """The ``operator`` (and ``noise``) an ``.npz`` measurement names, else None.

    A measurement file may carry the operator that made it as a string array
    (``np.savez(path, y=y, operator="mri:rate=0.3", noise=0.005)``); napari then opens it
    as a measurement that reconstructs as it is. Read without pickles.
    """
    path = Path(src).expanduser()
    if path.suffix.lower() != ".npz" or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if "y" not in f.files or "operator" not in f.files or f["operator"].ndim != 0:
                return None
            operator = str(f["operator"])
            noise = float(f["noise"]) if "noise" in f.files else 0.0
    except (OSError, ValueError, TypeError, zipfile.BadZipFile):
        return None
    return {"operator": operator, "noise": noise} if operator and math.isfinite(noise) else None


def load_measurement(src: str | Path) -> np.ndarray:
    """Read a measurement: ``.npy``/``.npz`` arrays as stored, image files as :func:`load_image`.

    Arrays keep their values (a noisy measurement may leave [0, 1]) and may be
    complex (MRI k-space); an ``.npz`` gives its ``y`` array (what ``reconstruct
    --out`` saves) or its only array.

    Returns
    -------
    ndarray
        ``(h, w)`` or ``(C, h, w)``, float32 or complex64.

    Raises
    ------
    ImageError
        Missing or unreadable file, an ``.npz`` without ``y`` and with several
        arrays, a non-numeric array, a shape that is not 2-D or 3-D, NaN/Inf values.
    """
    path = Path(src).expanduser()
    if path.suffix.lower() not in (".npy", ".npz"):
        return load_image(src)
    if not path.is_file():
        raise ImageError(f"measurement file {str(src)!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        if path.suffix.lower() == ".npz":
            with data:
                keys = list(data.keys())
                if "y" not in keys and len(keys) != 1:
                    raise ImageError(
                        f"{str(src)!r} holds arrays {keys}; name the measurement 'y' "
                        "(np.savez(path, y=...))"
                    )
                data = data["y" if "y" in keys else keys[0]]
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read {str(src)!r} as a numpy array: {exc}") from None
    a = np.asarray(data)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or a.ndim not in (2, 3):
        raise ImageError(
            f"{str(src)!r}: expected a numeric (h, w) or (C, h, w) array, got dtype {a.dtype} "
            f"shape {a.shape}"
        )
    if not np.isfinite(a).all():
        raise ImageError(f"{str(src)!r} contains NaN or Inf values")
    return a.astype(np.complex64 if np.iscomplexobj(a) else np.float32)


def _normalise(a: np.ndarray, where: str) -> np.ndarray:
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ImageError(f"{where}: not a numeric image (dtype {a.dtype})")
    if np.iscomplexobj(a):
        raise ImageError(f"{where}: complex values; pass a real image (e.g. its magnitude np.abs)")
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # (C, H, W) -> (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] in (2, 4):  # drop alpha
        a = a[..., : a.shape[-1] - 1]
        a = a[..., 0] if a.shape[-1] == 1 else a
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ImageError(f"{where}: expected a gray or RGB image, got an array of shape {a.shape}")
    if a.shape[0] < MIN_SIZE or a.shape[1] < MIN_SIZE:
        raise ImageError(
            f"{where}: image is {a.shape[0]}x{a.shape[1]}; at least {MIN_SIZE}x{MIN_SIZE} is needed"
        )
    if a.dtype in (np.uint8, np.uint16):  # 8- and 16-bit image files: full type range
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    elif a.dtype == bool:
        a = a.astype(np.float32)
    else:  # float data, and other integer types (signed, wide): range-rescaled if outside [0, 1]
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageError(f"{where}: image contains NaN or Inf pixels; clean or mask them first")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    out = a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)
    return np.ascontiguousarray(out, dtype=np.float32)


def to_gray(image: np.ndarray) -> np.ndarray:
    """``(..., C, H, W)`` -> ``(..., 1, H, W)`` by ITU-R 601 luma (gray input is returned as
    is); leading axes (a stack) are kept."""
    if image.shape[-3] == 1:
        return image
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None, None]
    return (image * weights).sum(axis=-3, keepdims=True)


def center_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The centre ``side × side`` crop of ``(C, H, W)`` (contiguous)."""
    h, w = image.shape[-2:]
    if side > min(h, w):
        raise ImageError(f"image of size {h}x{w} is smaller than the crop {side}x{side}")
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(image[..., top : top + side, left : left + side])


def crop_to_multiple(image: np.ndarray, s: int) -> np.ndarray:
    """Crop ``(C, H, W)`` at the bottom/right so that H and W are multiples of ``s``."""
    h, w = image.shape[-2] // s * s, image.shape[-1] // s * s
    if h == 0 or w == 0:
        raise ImageError(f"image of size {image.shape[-2:]} is smaller than the factor {s}")
    return np.ascontiguousarray(image[..., :h, :w])


#: the methods of :func:`normalise`
NORMALISATIONS = ("none", "minmax", "percentile")
Normalisation = Literal["none", "minmax", "percentile"]


@dataclass(frozen=True)
class Scaling:
    """How :func:`normalise` mapped raw values to [0, 1]: ``x = (raw - offset) * scale``.

    Attributes
    ----------
    offset : float
        The raw value that became 0.
    scale : float
        The factor after the offset (``1 / (high - low)``).
    method : str
        ``"none"``, ``"minmax"`` or ``"percentile"``.
    """

    offset: float
    scale: float
    method: str

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Normalised values (an image, a reconstruction) back in the raw data's units."""
        return np.asarray(x, dtype=np.float64) / self.scale + self.offset

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for layer metadata and run files)."""
        return asdict(self)

    def describe(self) -> str:
        """In words: ``"percentile: raw 12.5 … 4030 → 0 … 1"``."""
        if self.method == "none":
            return "none (×1)" if self.scale == 1 else f"none (raw ÷ {1 / self.scale:g})"
        return f"{self.method}: raw {self.offset:.4g} … {self.offset + 1 / self.scale:.4g} → 0 … 1"


def _numeric(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ImageError(f"not a numeric image (dtype {a.dtype})")
    if np.iscomplexobj(a):
        raise ImageError("complex values; pass a real image (e.g. its magnitude np.abs)")
    return a


def suggested_normalisation(image: np.ndarray) -> Normalisation:
    """The method :func:`normalise` should use on ``image`` unless told otherwise.

    ``"percentile"`` for integers wider than 8 bits (12-bit camera data in uint16 would be
    near-black divided by 65535) and for floats outside [0, 1]; ``"none"`` for 8-bit,
    boolean and [0, 1] float data, which already are images on the [0, 1] scale.
    """
    a = _numeric(image)
    if a.dtype == bool or a.size == 0:
        return "none"
    if np.issubdtype(a.dtype, np.integer):
        return (
            "percentile"
            if a.dtype.itemsize > 1 or np.issubdtype(a.dtype, np.signedinteger)
            else "none"
        )
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return "none" if -1e-3 <= lo and hi <= 1 + 1e-3 else "percentile"


def normalise(
    image: np.ndarray,
    method: Normalisation = "percentile",
    low: float = 0.5,
    high: float = 99.5,
) -> tuple[np.ndarray, Scaling]:
    """Map an image of any numeric type to float32 in [0, 1], reversibly.

    Parameters
    ----------
    image : ndarray
        Raw pixels of any shape (e.g. ``(C, H, W)``), any real numeric dtype.
    method : {"percentile", "minmax", "none"}
        ``"percentile"``: the ``low`` and ``high`` percentiles become 0 and 1 (values
        beyond are clipped); ``"minmax"``: the minimum and maximum do; ``"none"``:
        integers are divided by their type's maximum (255 for uint8, 65535 for uint16),
        floats are kept and must already lie in [0, 1].
    low, high : float
        Percentiles, in [0, 100], of ``"percentile"``.

    Returns
    -------
    image : ndarray
        float32, same shape, in [0, 1].
    scaling : Scaling
        What was done; ``scaling.invert(x)`` maps back to raw units.

    Raises
    ------
    ImageError
        Unknown method, bad percentiles, a non-numeric or complex array, NaN/Inf values,
        or (``"none"``) values outside [0, 1].
    """
    if method not in NORMALISATIONS:
        raise ImageError(
            f"unknown normalisation {method!r}; choose one of {', '.join(NORMALISATIONS)}"
        )
    if not 0.0 <= low < high <= 100.0:
        raise ImageError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    a = _numeric(image)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        full = float(np.iinfo(a.dtype).max)
        a = a.astype(np.float64)
    else:
        full = 1.0
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageError("image contains NaN or Inf pixels; clean or mask them first")
    if method == "none":
        scaling = Scaling(offset=0.0, scale=1.0 / full, method="none")
        x = a * scaling.scale
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ImageError(
                f"values in [{lo * full:.4g}, {hi * full:.4g}] lie outside [0, 1]; "
                "normalise them (percentile or min–max)"
            )
    else:
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if method == "percentile" and a.size:
            lo, hi = (float(v) for v in np.percentile(a, (low, high)))
            if hi <= lo:  # mostly one value (a sparse image): fall back to the full range
                lo, hi = float(a.min()), float(a.max())
        scaling = Scaling(offset=lo, scale=1.0 / (hi - lo) if hi > lo else 1.0, method=method)
        x = (a - scaling.offset) * scaling.scale
    return np.ascontiguousarray(np.clip(x, 0.0, 1.0), dtype=np.float32), scaling
