"""``LinearOperator.grid``: where a measurement's pixels lie on the image grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deq_explorer import api


def _blob(side: int, centre: tuple[float, float], width: float = 4.0) -> np.ndarray:
    rows, cols = np.indices((side, side), dtype=np.float64)
    d2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    return np.exp(-d2 / (2 * width**2)).astype(np.float32)


@pytest.mark.parametrize(
    "spec", ["sr:scale=3,sigma=1.5", "sr:scale=3,kernel=box", "sr:scale=2,kernel=box",
             "sr-bicubic:scale=3", "deblur:sigma=1.0", "denoise"],
)  # fmt: skip
def test_a_blob_is_measured_where_the_grid_says(spec):
    """The blob's centre of mass in ``y``, mapped through the grid, is its centre in ``x``."""
    centre = (23.3, 25.8)
    problem = api.simulate(_blob(48, centre), spec, device="cpu")
    (scale, offset) = problem.op.grid()
    y = problem.y[0, 0].to(torch.float64).numpy()
    rows, cols = np.indices(y.shape)
    found = ((y * rows).sum() / y.sum(), (y * cols).sum() / y.sum())
    mapped = [o + s * f for o, s, f in zip(offset, scale, found, strict=True)]
    np.testing.assert_allclose(mapped, centre, atol=0.05)


def test_a_measurement_of_another_size_has_no_known_grid():
    from deq_explorer.operators.base import LinearOperator

    class Crop(LinearOperator):
        y_shape = (1, 4, 4)

        def A(self, x):
            return x[..., :4, :4]

        def A_adjoint(self, y):
            raise NotImplementedError

        def prox_data(self, z, y, gamma):
            raise NotImplementedError

    assert Crop((1, 8, 8)).grid() is None
