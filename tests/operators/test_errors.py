"""Every bad parameter gets an OperatorError that names the problem and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from deq_explorer.operators.base import OperatorError
from deq_explorer.registry import operators

RGB, GRAY = (3, 36, 30), (1, 36, 30)

CASES = [
    ("mri:rate=0", GRAY, r"rate must lie in \(0, 1\], got 0"),
    ("mri:rate=1.5", GRAY, r"rate must lie in \(0, 1\]"),
    ("mri:rate=-0.1,pattern=cartesian", GRAY, r"rate"),
    ("mri:pattern=spiral", GRAY, "pattern must be 'radial' or 'cartesian'"),
    ("mri", (1, 1, 1), "too small"),
    ("inpaint:p=1", RGB, r"p must lie in \[0, 1\), got 1"),
    ("inpaint:p=-0.2", RGB, r"\[0, 1\)"),
    ("deblur:sigma=-1", RGB, "sigma must be finite and >= 0"),
    ("sr:sigma=-0.5", RGB, "sigma must be finite and >= 0"),
    ("sr:scale=5", RGB, "scale must be 2, 3 or 4"),
    ("sr-bicubic:scale=1", RGB, "scale must be 2, 3 or 4"),
    ("sr:scale=4", (3, 37, 30), r"not divisible by the scale 4: crop it to 36×28"),
    ("sr-bicubic:scale=3", (1, 37, 31), r"crop it to 36×30"),
    ("sr:scale=2", (1, 2, 8), "too small for scale 2"),
    ("sr:kernel=triangle", RGB, "'gaussian', 'box' or a path to a .npy"),
]


@pytest.mark.parametrize(("spec", "shape", "message"), CASES)
def test_bad_parameters(spec, shape, message):
    with pytest.raises(OperatorError, match=message):
        operators.build(spec, shape=shape)


def test_bad_kernel_files(tmp_path):
    np.save(tmp_path / "cube.npy", np.ones((3, 3, 3)))
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    np.save(tmp_path / "zero.npy", np.zeros((3, 3)))
    np.save(tmp_path / "big.npy", np.ones((40, 3)))
    (tmp_path / "junk.npy").write_text("not numpy")
    (tmp_path / "k.txt").write_text("1 2 3")
    for name, message in [
        ("missing.npy", "cannot read kernel file"),
        ("junk.npy", "cannot read kernel file"),
        ("k.txt", r"\.npy file"),
        ("cube.npy", "2-D numeric array"),
        ("nan.npy", "NaN or Inf"),
        ("zero.npy", "all zeros"),
        ("big.npy", "larger than the image"),
    ]:
        for op in ("deblur", "sr"):
            with pytest.raises(OperatorError, match=message):
                operators.build(f"{op}:kernel={tmp_path / name}", shape=RGB)


def test_bad_masks(tmp_path):
    np.save(tmp_path / "small.npy", np.ones((10, 10)))
    np.save(tmp_path / "gray.npy", np.full((36, 30), 0.5))
    np.save(tmp_path / "ok.npy", np.ones((1, 36, 30), dtype=bool))
    with pytest.raises(OperatorError, match=r"has shape \(10, 10\), the image needs \(36, 30\)"):
        operators.build(f"inpaint:mask={tmp_path / 'small.npy'}", shape=RGB)
    with pytest.raises(OperatorError, match=r"only 0 .* and 1"):
        operators.build(f"inpaint:mask={tmp_path / 'gray.npy'}", shape=RGB)
    with pytest.raises(OperatorError, match="cannot read mask file"):
        operators.build(f"inpaint:mask={tmp_path / 'none.npy'}", shape=RGB)
    op = operators.build(f"inpaint:mask={tmp_path / 'ok.npy'}", shape=RGB)
    assert bool(op.mask.all())


def test_operator_error_is_a_value_error():
    assert issubclass(OperatorError, ValueError)
