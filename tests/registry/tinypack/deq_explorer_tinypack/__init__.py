"""A minimal extension pack: one operator (scaling) and one prior (shrinkage)."""

from deq_explorer.operators.base import LinearOperator
from deq_explorer.priors.base import Prior
from deq_explorer.registry import operators, priors


class Scale(LinearOperator):
    """A = c·I."""

    name = "tiny-scale"

    def __init__(self, shape, c):
        super().__init__(shape)
        self.c = c

    @property
    def y_shape(self):
        return self.x_shape

    def A(self, x):
        return self.c * x

    def A_adjoint(self, y):
        return self.c * y

    def prox_data(self, z, y, gamma):
        return (z + gamma * self.c * y) / (1 + gamma * self.c**2)


class Shrink(Prior):
    """D(x) = s·x."""

    name = "tiny-shrink"

    def __init__(self, s):
        self.s = s

    def denoise(self, x, sigma=None):
        return self.s * x


def tiny_scale(shape, device=None, dtype=None, *, c: float = 2.0):
    """Scaling by a constant (tiny test pack)."""
    return Scale(shape, c)


def tiny_shrink(device=None, dtype=None, *, s: float = 0.9):
    """Shrinkage towards zero (tiny test pack)."""
    return Shrink(s)


def register():
    operators.register("tiny-scale", tiny_scale)
    priors.register("tiny-shrink", tiny_shrink)


def register_clash():
    """A bad registration: its first name is fine, then it registers that name again."""
    priors.register("tiny-clash-ok", tiny_shrink)
    priors.register("tiny-clash-ok", tiny_shrink)
