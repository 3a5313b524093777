"""Forward operators ``y = A x``; importing this package registers the built-ins.

Modules are imported in the order users see the operators in menus.
"""

# isort: off
from deq_explorer.operators import denoise, deblur, sr, bicubic, inpaint, mri  # noqa: F401
from deq_explorer.operators import masks, noise  # noqa: F401

# isort: on
from deq_explorer.operators.base import LinearOperator, OperatorError
from deq_explorer.operators.needs import ImageNeeds, image_needs
from deq_explorer.operators.noise import add_noise

__all__ = ["ImageNeeds", "LinearOperator", "OperatorError", "add_noise", "image_needs"]
