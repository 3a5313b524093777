"""DEQ Explorer pack: deepinv's linear physics as operators, its denoisers as priors.

Installing this distribution registers, through the entry-point group
``deq_explorer.plugins``, the operators ``dinv-blur``, ``dinv-downsampling``,
``dinv-inpainting``, ``dinv-mri``, ``dinv-tomography`` and the priors
``dinv-dncnn``, ``dinv-drunet``. deepinv itself is imported only when the
explorer loads the pack; without it the pack is reported as broken by name.

The other direction, the explorer's priors and operators as deepinv denoisers
and physics, is :mod:`deq_explorer_deepinv.export` (imported on demand).
"""

from __future__ import annotations

__all__ = ["register"]


def register() -> None:
    """Register the pack's operators and priors (called by the explorer's plugin loader)."""
    try:
        import deepinv  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "deq-explorer-deepinv needs deepinv: pip install torch==2.14.1 torchvision==0.29.1 "
            "deepinv (see plugins/deq-explorer-deepinv/README.md)"
        ) from exc
    from deq_explorer.operators.needs import ImageNeeds
    from deq_explorer.registry import operators, priors
    from deq_explorer_deepinv import operators as ops
    from deq_explorer_deepinv import priors as pri

    def factor_needs(*, factor: int, **_: object) -> ImageNeeds:
        return ImageNeeds(multiple=factor, example=(2, 18 * factor, 15 * factor))

    operators.register("dinv-blur", ops.dinv_blur)
    operators.register("dinv-downsampling", ops.dinv_downsampling, metadata={"needs": factor_needs})
    operators.register("dinv-inpainting", ops.dinv_inpainting)
    mri = ImageNeeds(channels=1, example=(1, 37, 31))
    operators.register("dinv-mri", ops.dinv_mri, metadata={"needs": mri})
    square = ImageNeeds(example=(1, 16, 16))
    operators.register("dinv-tomography", ops.dinv_tomography, metadata={"needs": square})
    priors.register("dinv-dncnn", pri.dinv_dncnn)
    priors.register("dinv-drunet", pri.dinv_drunet)
