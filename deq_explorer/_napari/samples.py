"""File ▸ Open Sample ▸ DEQ Explorer: offline images and a ready-made problem.

Every layer carries its provenance in ``metadata["deq_explorer"]``. Images
come from :func:`deq_explorer.images.load_image` (files shipped with
scikit-image and matplotlib; nothing is downloaded).
"""

from __future__ import annotations

from typing import Any

from deq_explorer import api
from deq_explorer._napari._convert import to_layer_data
from deq_explorer._napari._problems import KEY, display, measurement_recipe, sampling_mask
from deq_explorer.images import load_image, sample_info

__all__ = ["astronaut", "brain", "camera", "mri_problem", "phantom"]

LayerData = tuple[Any, dict[str, Any], str]


def _image(name: str) -> LayerData:
    data, rgb = to_layer_data(load_image(f"sample:{name}"))
    meta = {
        KEY: {
            "role": "ground truth",
            "source": f"sample:{name}",
            "provenance": sample_info(name)["source"],
        }
    }
    limits = {} if rgb else {"contrast_limits": (0.0, 1.0)}
    return data, {"name": name, "rgb": rgb, "metadata": meta, **limits}, "image"


def brain() -> list[LayerData]:
    """The real brain MRI slice."""
    return [_image("brain")]


def camera() -> list[LayerData]:
    """The cameraman."""
    return [_image("camera")]


def astronaut() -> list[LayerData]:
    """The astronaut (RGB)."""
    return [_image("astronaut")]


def phantom() -> list[LayerData]:
    """The Shepp–Logan phantom."""
    return [_image("phantom")]


def mri_problem(rate: float = 0.1, noise: float = 0.005, seed: int = 0) -> list[LayerData]:
    """Brain MRI at ``rate`` radial sampling: ground truth, k-space, mask and zero-filled init."""
    operator = f"mri:rate={rate}"
    truth = _image("brain")
    problem = api.simulate(
        load_image("sample:brain"), operator, noise=noise, seed=seed, device="auto"
    )
    recipe = measurement_recipe("sample:brain", operator, noise, seed, None, "auto")
    recipe["provenance"] = f"{operator} with noise σ = {noise} applied to sample:brain, seed {seed}"
    mask = sampling_mask(problem.op)
    x0, _ = to_layer_data(problem.x_init().detach()[0].cpu().numpy())
    layers = [
        truth,
        (display(problem.y[0])[0], {"name": f"y · {operator}", "metadata": {KEY: recipe}}, "image"),
        (
            x0,
            {
                "name": "init(y)",
                "contrast_limits": (0.0, 1.0),
                "metadata": {KEY: {"role": "init", "operator": operator}},
            },
            "image",
        ),
    ]
    if mask is not None:
        meta = {KEY: {"role": "mask", "operator": operator}}
        layers.insert(2, (mask, {"name": "mask", "metadata": meta}, "image"))
    return layers
