"""Write the committed inputs of ``sample_data/`` (run by hand; the files are in the repository).

    python scripts/make_sample_data.py

Each file is a measurement format the CLI's ``--measurement`` and napari read (the ``.npz``
files name their ``operator`` and ``noise``, so napari opens them as measurements), made from a
public-domain or freely licensed source with a fixed seed (sample_data/README.md):

* ``phantom_kspace_radial30.npz``: complex k-space ``y`` (1, 256, 256) of the Shepp–Logan
  phantom, ``mri:rate=0.3``, noise σ 0.005, seed 0;
* ``astronaut_blur_sigma2.npz``: the blurred, noisy luma ``y`` (1, 256, 256) of the astronaut's
  face (``deblur:sigma=2.0``, noise σ 0.01, seed 0) and the blur ``kernel`` it was made with;
* ``phantom_head_8.nii.gz``: a synthetic 8-slice head volume (the phantom on the sections of an
  ellipsoid), 1 × 1 × 2 mm voxels, to try the NIfTI reader (needs the ``[mri]`` extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deq_explorer import api
from deq_explorer.images import load_image, to_gray

OUT = Path(__file__).resolve().parents[1] / "deq_explorer" / "sample_data"


def kspace() -> None:
    problem = api.simulate("sample:phantom", "mri:rate=0.3", noise=0.005, seed=0, device="cpu")
    np.savez_compressed(
        OUT / "phantom_kspace_radial30.npz", y=problem.y[0].numpy(), operator="mri:rate=0.3",
        noise=0.005,
    )  # fmt: skip


def blurred() -> None:
    face = to_gray(load_image("sample:astronaut"))[:, 20:276, 130:386]  # 256² around the face
    problem = api.simulate(face, "deblur:sigma=2.0", noise=0.01, seed=0, device="cpu")
    kernel = getattr(problem.op, "kernel", None)
    arrays = {"y": problem.y[0].numpy().astype(np.float32), "operator": "deblur:sigma=2.0",
              "noise": 0.01}  # fmt: skip
    if isinstance(kernel, torch.Tensor):
        arrays["kernel"] = kernel.detach().cpu().numpy().astype(np.float32)
    np.savez_compressed(OUT / "astronaut_blur_sigma2.npz", **arrays)


def volume() -> None:
    """A synthetic head: the phantom scaled by √(1 − z²) on 8 slices (an ellipsoid), 2 mm apart."""
    import nibabel as nib
    from skimage.data import shepp_logan_phantom
    from skimage.transform import rescale

    side, slices = 128, 8
    flat = rescale(shepp_logan_phantom(), side / 400, anti_aliasing=True)
    volume = np.zeros((side, side, slices), np.uint8)
    for k, z in enumerate(np.linspace(-0.8, 0.8, slices)):
        small = rescale(flat, np.sqrt(1 - z**2), anti_aliasing=True)
        top = (side - small.shape[0]) // 2
        volume[top : top + small.shape[0], top : top + small.shape[1], k] = np.round(
            255 * np.clip(small, 0, 1)
        )
    nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.0, 1.0])), OUT / "phantom_head_8.nii.gz")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    kspace()
    blurred()
    volume()
    for f in sorted(OUT.iterdir()):
        print(f"{f.name:32s} {f.stat().st_size / 1024:8.1f} KiB")
