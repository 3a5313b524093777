"""Which measurement layer holds which :class:`~deq_explorer.api.Problem`.

A measurement layer carries, in ``layer.metadata["deq_explorer"]``, the
*recipe* of its problem (image source, operator specs, noise, seed): plain
values that survive a save and let the problem be rebuilt exactly (the
simulation is seeded). The live ``Problem`` object is kept beside the layer in
a weak table, so nothing heavy sits in the metadata.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch
from napari.layers import Image, Layer

from deq_explorer import api
from deq_explorer._napari._convert import from_layer_data
from deq_explorer.errors import LayerError
from deq_explorer.images import load_image
from deq_explorer.operators.masks import centered

__all__ = [
    "KEY",
    "attach",
    "display",
    "is_measurement",
    "measurement_recipe",
    "problem_of",
    "recipe_of",
    "sampling_mask",
]

KEY = "deq_explorer"
_live: weakref.WeakKeyDictionary[Layer, api.Problem] = weakref.WeakKeyDictionary()


def recipe_of(layer: Layer) -> dict[str, Any] | None:
    """The problem recipe stored in a measurement layer, or ``None``."""
    meta = layer.metadata.get(KEY)
    if isinstance(meta, dict) and meta.get("role") == "measurement":
        return meta
    return None


def is_measurement(layer: Layer) -> bool:
    return recipe_of(layer) is not None


def attach(layer: Layer, problem: api.Problem) -> None:
    """Remember ``problem`` as the live problem of measurement ``layer``."""
    _live[layer] = problem


def problem_of(layer: Layer, layers: Any) -> api.Problem:
    """The problem of a measurement layer, rebuilt from its recipe if needed.

    Parameters
    ----------
    layer : Layer
        A layer made by the Problem panel or a problem sample.
    layers : LayerList
        The viewer's layers (a recipe may name its ground-truth layer).

    Raises
    ------
    LayerError
        If the layer is not a measurement or its source is gone.
    """
    if layer in _live:
        return _live[layer]
    recipe = recipe_of(layer)
    if recipe is None:
        raise LayerError(
            f"layer {layer.name!r} is not a measurement: simulate one in the Problem panel "
            "or open File ▸ Open Sample ▸ DEQ Explorer ▸ a problem sample"
        )
    source = recipe["image"]
    if recipe.get("measured"):
        name = source.removeprefix("layer:")
        if name not in layers:
            raise LayerError(f"the measured layer {name!r} of {layer.name!r} is gone")
        y = from_layer_data(layers[name].data, layers[name].rgb, name)
        problem = api.from_measurement(y, recipe["operator"], device=recipe.get("device", "auto"))
        _live[layer] = problem
        return problem
    if source.startswith("layer:"):
        name = source.removeprefix("layer:")
        if name not in layers or not isinstance(layers[name], Image):
            raise LayerError(f"the ground-truth layer {name!r} of {layer.name!r} is gone")
        image = from_layer_data(layers[name].data, layers[name].rgb, name)
    else:
        image = load_image(source)
    problem = api.simulate(
        image,
        recipe["operator"],
        noise=float(recipe["noise"]),
        seed=int(recipe["seed"]),
        solve_operator=recipe.get("solve_operator"),
        device=recipe.get("device", "auto"),
    )
    _live[layer] = problem
    return problem


def measurement_recipe(
    source: str,
    operator: str,
    noise: float,
    seed: int,
    solve_operator: str | None,
    device: str,
) -> dict[str, Any]:
    """The metadata record of a simulated measurement."""
    return {
        "role": "measurement",
        "image": source,
        "operator": operator,
        "solve_operator": solve_operator,
        "noise": float(noise),
        "seed": int(seed),
        "device": device,
    }


def display(y: torch.Tensor) -> np.ndarray:
    """One measurement ``(C, ...)`` as a picture: log-magnitude k-space, DC centred."""
    if y.is_complex():
        y = centered(y).abs().log1p()
    return y.detach().to("cpu", torch.float32).numpy()


def sampling_mask(op: Any) -> np.ndarray | None:
    """The operator's sampling mask as a float picture (k-space centred), if it has one."""
    mask = getattr(op, "mask_centered", None)
    if mask is None:
        mask = getattr(op, "mask", None)
    if mask is None:
        return None
    return mask.detach().to("cpu", torch.float32).numpy().reshape(mask.shape[-2:])
