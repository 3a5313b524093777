"""MRI volumes: NIfTI files read through nibabel, and the 2-D slices training uses.

nibabel (and, for the built-in MNI152 template, nilearn's wheel, which ships it as
package data) are optional: ``pip install "deq-explorer[mri]"``. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from deq_explorer.errors import VolumeError

__all__ = [
    "MNI152",
    "VOLUME_SUFFIXES",
    "VolumeError",
    "axial_stack",
    "is_volume",
    "load_volume",
    "mni152_path",
    "unit_range",
    "volume_slices",
]

VOLUME_SUFFIXES = (".nii", ".nii.gz")
#: the built-in MRI data set: nilearn's MNI152 2009a T1 template (197×233×189, 1 mm)
MNI152 = "mni152"
_MNI_FILE = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
_INSTALL = 'pip install "deq-explorer[mri]"'


def is_volume(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``)."""
    return str(path).lower().endswith(VOLUME_SUFFIXES)


def mni152_path() -> Path:
    """Path of the MNI152 template inside the installed nilearn package (not imported)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise VolumeError(f"the built-in MRI data {MNI152!r} comes with nilearn: {_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / _MNI_FILE
    if not path.is_file():
        raise VolumeError(f"this nilearn has no MNI152 template at {str(path)!r}; {_INSTALL}")
    return path


def load_volume(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read a 3-D NIfTI volume.

    Returns
    -------
    volume : ndarray
        float32 ``(X, Y, Z)`` in the file's voxel order, intensities as stored.
    spacing : tuple of float
        Voxel size along the three axes (the file's units, usually mm).

    Raises
    ------
    VolumeError
        nibabel missing, file missing or unreadable, not 3-D (a 4-D file with one
        volume is accepted), or NaN/Inf voxels.
    """
    try:
        import nibabel
    except ModuleNotFoundError:
        raise VolumeError(f"reading {str(path)!r} needs nibabel: {_INSTALL}") from None
    path = Path(path).expanduser()
    if not path.is_file():
        raise VolumeError(f"volume file {str(path)!r} does not exist")
    try:
        image = nibabel.load(path)
        volume = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # any reader failure: not a volume we can use
        raise VolumeError(f"cannot read {str(path)!r} as NIfTI: {exc}") from None
    if volume.ndim == 4 and volume.shape[-1] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise VolumeError(f"{str(path)!r} has shape {volume.shape}; expected a 3-D volume")
    if not np.isfinite(volume).all():
        raise VolumeError(f"{str(path)!r} has NaN or infinite voxels")
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    return volume, zooms  # type: ignore[return-value]


def volume_slices(
    volume: np.ndarray, *, stride: int = 2, min_foreground: float = 0.2, side: int = 0
) -> list[tuple[str, np.ndarray]]:
    """2-D slices of a volume in its three orientations, scaled to [0, 1].

    Intensities are divided by the volume's 99.5th percentile and clipped, so
    contrast matches across volumes. A slice is kept when at least
    ``min_foreground`` of its pixels exceed 10 % of that scale (no near-empty
    edge slices). Slices are shown head up (the second voxel axis flipped).

    Parameters
    ----------
    volume : ndarray
        ``(X, Y, Z)``.
    stride : int
        Every ``stride``-th slice along each axis.
    min_foreground : float
        Fraction of foreground pixels a slice needs.
    side : int
        Zero-pad each slice (centred) to at least ``side`` × ``side``; 0 keeps its size.

    Returns
    -------
    list of (name, ndarray)
        ``("axis{a}-{i}", (1, H, W) float32)`` in axis then index order.
    """
    if stride < 1:
        raise VolumeError(f"slice stride must be ≥ 1; got {stride}")
    v = unit_range(volume)
    out = []
    for axis in range(3):
        for i in range(0, v.shape[axis], stride):
            s = np.take(v, i, axis=axis)
            if (s > 0.1).mean() < min_foreground:
                continue
            s = np.ascontiguousarray(s.T[::-1])  # rows: the slice's second axis, head up
            out.append((f"axis{axis}-{i:03d}", _pad(s, side)[None]))
    return out


def unit_range(volume: np.ndarray) -> np.ndarray:
    """``volume`` divided by its 99.5th percentile and clipped to [0, 1] (float32)."""
    scale = float(np.percentile(volume, 99.5))
    if scale <= 0:
        raise VolumeError("the volume is empty (its 99.5th percentile is not positive)")
    return np.clip(volume / scale, 0.0, 1.0).astype(np.float32)


def axial_stack(
    volume: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A volume as a stack of slices for display: ``(Z, Y, X)`` in [0, 1], second axis up.

    Returns the stack and its voxel size in the same axis order (napari's layer scale).
    """
    stack = np.ascontiguousarray(unit_range(volume).transpose(2, 1, 0)[:, ::-1, :])
    return stack, (spacing[2], spacing[1], spacing[0])


def _pad(s: np.ndarray, side: int) -> np.ndarray:
    h, w = s.shape
    ph, pw = max(side - h, 0), max(side - w, 0)
    if not (ph or pw):
        return s
    return np.pad(s, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
