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

from deq_explorer import api, stacks
from deq_explorer._napari._convert import LayerData, layer_array, stack_array, to_layer_data
from deq_explorer.errors import ImageError, LayerError
from deq_explorer.images import Scaling, load_image, load_measurement, normalise, to_gray
from deq_explorer.operators.masks import centered

__all__ = [
    "KEY",
    "attach",
    "display",
    "file_measurement",
    "file_recipe",
    "is_measurement",
    "layer_image",
    "make_problem",
    "measurement_recipe",
    "panel_words",
    "placements",
    "problem_layers",
    "problem_name",
    "problem_of",
    "recipe_of",
    "sampling_mask",
    "unique_names",
]

#: ``(scale, translate)`` of a layer's last two axes (rows, columns)
Placement = tuple[tuple[float, float], tuple[float, float]]
#: ``(scale, translate)`` of a stack's leading axes (a volume's slice spacing ...)
Lead = tuple[tuple[float, ...], tuple[float, ...]]
#: what a measurement layer solves: one problem, or one per image of a stack
Solvable = api.Problem | stacks.Stack

KEY = "deq_explorer"
_live: weakref.WeakKeyDictionary[Layer, Solvable] = weakref.WeakKeyDictionary()


def recipe_of(layer: Layer) -> dict[str, Any] | None:
    """The problem recipe stored in a measurement layer, or ``None``."""
    meta = layer.metadata.get(KEY)
    if isinstance(meta, dict) and meta.get("role") == "measurement":
        return meta
    return None


def is_measurement(layer: Layer) -> bool:
    return recipe_of(layer) is not None


def attach(layer: Layer, problem: Solvable) -> None:
    """Remember ``problem`` as the live problem of measurement ``layer``."""
    _live[layer] = problem


def problem_of(layer: Layer, layers: Any) -> Solvable:
    """The problem of a measurement layer, rebuilt from its recipe if needed: a
    :class:`~deq_explorer.stacks.Stack` for a stack made with ``recipe["stack"]``.

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
    if "file" in recipe:  # a measurement read from a file (complex k-space cannot be a layer)
        problem = api.from_measurement(
            load_measurement(recipe["file"]), recipe["operator"], noise=float(recipe["noise"]),
            device=recipe.get("device", "auto"), reference=recipe.get("reference"),
        )  # fmt: skip
        _live[layer] = problem
        return problem
    source = recipe["image"]
    if source.startswith("layer:"):
        name = source.removeprefix("layer:")
        if name not in layers or not isinstance(layers[name], Image):
            what = "measured" if recipe.get("measured") else "ground-truth"
            raise LayerError(f"the {what} layer {name!r} of {layer.name!r} is gone")
        raw = _raw(layers[name], recipe)
        problem, _ = make_problem(raw, recipe, name)
    else:
        problem = _simulate(load_image(source), recipe)
    _live[layer] = problem
    return problem


#: the CLI's hints in core messages -> the Problem panel's controls that do the same
_PANEL_WORDS = (
    ("crop=True, or --crop on the CLI", "tick 'crop to fit' in the Problem panel"),
    ("--gray on the CLI, deq_explorer.images.to_gray in Python",
     "tick 'to gray' in the Problem panel"),
    ("--gray on the CLI", "tick 'to gray' in the Problem panel"),
    ("normalise them (percentile or min–max)",
     "choose 'normalise' ▸ percentile or min–max in the Problem panel"),
)  # fmt: skip


def _raw(layer: Image, recipe: dict[str, Any]) -> np.ndarray:
    """The pixels of ``layer`` a recipe measured: every image of a stack, or one slice."""
    if recipe.get("stack"):
        return stack_array(layer.data, layer.rgb, layer.name)
    return layer_array(layer.data, layer.rgb, layer.name, tuple(recipe.get("slice") or ()))


def panel_words(message: str) -> str:
    """A core error message with its CLI hints put as the Problem panel's controls."""
    for cli, panel in _PANEL_WORDS:
        message = message.replace(cli, panel)
    return message


def layer_image(raw: np.ndarray, recipe: dict[str, Any], name: str) -> tuple[np.ndarray, Scaling]:
    """A layer's raw ``(C, H, W)`` pixels as the recipe's image in [0, 1], and their scaling.

    ``recipe["normalise"]`` (default ``"none"``) is the method of
    :func:`~deq_explorer.images.normalise`; ``recipe["gray"]`` turns RGB into gray.

    Raises
    ------
    LayerError
        Values the method cannot take (floats outside [0, 1] without normalisation ...).
    """
    try:
        image, scaling = normalise(raw, recipe.get("normalise", "none"))
    except ImageError as exc:
        raise LayerError(panel_words(f"layer {name!r}: {exc}")) from None
    return (to_gray(image) if recipe.get("gray") else image), scaling


def make_problem(raw: np.ndarray, recipe: dict[str, Any], name: str) -> tuple[Solvable, Scaling]:
    """The problem a recipe makes from a layer's raw pixels (``layer_array``), and their scaling.

    A simulation (``api.simulate``, cropped to fit with ``recipe["crop"]``), or with
    ``recipe["measured"]`` the layer taken as the measurement (``api.from_measurement``).
    With ``recipe["stack"]``, ``raw`` is a whole stack (``stack_array``, normalised as one)
    and the problem a :class:`~deq_explorer.stacks.Stack` (``stacks.simulate_stack``,
    ``stacks.from_measurements``).
    """
    image, scaling = layer_image(raw, recipe, name)
    if recipe.get("measured"):
        device = recipe.get("device", "auto")
        measure = stacks.from_measurements if recipe.get("stack") else api.from_measurement
        return measure(image, recipe["operator"], device=device), scaling
    return _simulate(image, recipe), scaling


def _simulate(image: np.ndarray, recipe: dict[str, Any]) -> Solvable:
    """``api.simulate`` of ``image`` as the recipe says (cropped to fit with ``"crop"``)."""
    simulate = stacks.simulate_stack if recipe.get("stack") else api.simulate
    return simulate(
        image,
        recipe["operator"],
        noise=float(recipe["noise"]),
        seed=int(recipe["seed"]),
        solve_operator=recipe.get("solve_operator"),
        device=recipe.get("device", "auto"),
        crop=bool(recipe.get("crop", False)),
    )


def file_recipe(
    path: str, operator: str, noise: float, reference: str | None = None
) -> dict[str, Any]:
    """The metadata record of a measurement read from ``path`` (``.npy``/``.npz``/image).

    The layer shows the measurement (k-space as its log-magnitude); the problem is read
    from the file again when the layer is solved. ``reference`` (an image or
    ``sample:NAME``) turns on PSNR/SSIM.
    """
    return {"role": "measurement", "file": str(path), "operator": operator,
            "noise": float(noise), "reference": reference, "device": "auto"}  # fmt: skip


def file_measurement(
    path: str, operator: str, noise: float, name: str, reference: str | None = None
) -> LayerData:
    """A measurement layer of the file at ``path``: its picture (k-space as log-magnitude)
    and the :func:`file_recipe` that reads the file again when the layer is solved."""
    y = load_measurement(path)
    picture, rgb = to_layer_data(display(torch.from_numpy(y if y.ndim == 3 else y[None])))
    recipe = file_recipe(str(path), operator, noise, reference)
    recipe["provenance"] = f"{path}, measured with {operator}"
    return picture, {"name": name, "rgb": rgb, "metadata": {KEY: recipe}}, "image"


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


def problem_name(operator: str, image: str, solve_operator: str | None = None) -> str:
    """A problem's name: its operator (→ the solver's, if another) and the image it measured."""
    model = f"{operator} → {solve_operator}" if solve_operator not in (None, operator) else operator
    return f"{model} · {image}"


def unique_names(layers: Any, names: list[str]) -> list[str]:
    """``names``, or with the first counter `` (2)``, `` (3)`` … that no layer has for any."""
    taken = {layer.name for layer in layers}
    n, suffix = 1, ""
    while any(name + suffix in taken for name in names):
        n += 1
        suffix = f" ({n})"
    return [name + suffix for name in names]


def placements(problem: api.Problem, placed: Placement, *, measured: bool = False) -> dict:
    """Where the image-grid layers and the measurement layer go so that they overlay.

    Parameters
    ----------
    problem : api.Problem
        Its measuring operator's :meth:`~deq_explorer.operators.base.LinearOperator.grid`
        says where the measurement's pixels lie on the image grid (×3 SR: every third).
    placed : ((sy, sx), (ty, tx))
        The ``scale`` and ``translate`` of the layer the problem came from: the ground
        truth, or with ``measured`` the measurement itself.

    Returns
    -------
    dict
        ``{"image": ..., "measurement": ...}``, each ``{"scale": ..., "translate": ...}``.
        A measurement of unknown geometry is placed like the image.
    """
    grid = (problem.sim_op or problem.op).grid()
    (gs, go), ((sy, sx), (ty, tx)) = grid or ((1.0, 1.0), (0.0, 0.0)), placed
    if measured:  # the image grid, from the measurement's: invert y ↦ offset + scale · y
        sy, sx = sy / gs[0], sx / gs[1]
        ty, tx = ty - sy * go[0], tx - sx * go[1]
    image = {"scale": (sy, sx), "translate": (ty, tx)}
    if grid is None:
        return {"image": image, "measurement": image}
    return {
        "image": image,
        "measurement": {
            "scale": (sy * gs[0], sx * gs[1]),
            "translate": (ty + sy * go[0], tx + sx * go[1]),
        },
    }


def problem_layers(
    problem: Solvable,
    recipe: dict[str, Any],
    name: str,
    placed: Placement = ((1.0, 1.0), (0.0, 0.0)),
    *,
    measured: bool = False,
    lead: Lead = ((), ()),
) -> list[LayerData]:
    """The measurement (holding ``recipe``), the sampling mask (if any) and ``init(y)`` layers.

    Named ``y · NAME``, ``mask · NAME`` and ``init(y) · NAME`` after the problem's ``name``,
    and placed by :func:`placements` over the layer at ``placed``. A
    :class:`~deq_explorer.stacks.Stack` gives stacks of its leading shape (placed on the
    leading axes at ``lead``, the source layer's); its one mask shows on every slice.
    Plain data, no layer objects: a worker thread builds them, the viewer adds them.
    """
    stacked = isinstance(problem, stacks.Stack)
    single = problem.problems[0] if stacked else problem
    shape = problem.shape if stacked else ()
    where = placements(single, placed, measured=measured)
    on_lead = {
        key: {"scale": (*lead[0], *at["scale"]), "translate": (*lead[1], *at["translate"])}
        for key, at in where.items()
    } if stacked else where  # fmt: skip
    operator = recipe["operator"]
    y = display(problem.measurements() if stacked else single.y[0])
    y, rgb = to_layer_data(y.reshape(*shape, *y.shape[-3:]))
    # contrast limits given (here, in the worker): napari does not scan the data when adding
    lo, hi = float(y.min()), float(y.max())
    limits = {} if rgb else {"contrast_limits": (lo, hi if hi > lo else lo + 1.0)}
    layers: list[LayerData] = [
        (y, {"name": f"y · {name}", "rgb": rgb, "metadata": {KEY: recipe}, **limits,
             **on_lead["measurement"]}, "image")
    ]  # fmt: skip
    mask = sampling_mask(single.op)
    if mask is not None:
        meta = {KEY: {"role": "mask", "operator": operator}}
        layers.append(
            (mask, {"name": f"mask · {name}", "metadata": meta, "colormap": "gray",
                    "contrast_limits": (0.0, 1.0), **where["measurement"]}, "image")
        )  # fmt: skip
    x0 = problem.x_init().detach().cpu().numpy()
    x0, rgb = to_layer_data(x0.reshape(*shape, *x0.shape[-3:]))
    meta = {KEY: {"role": "init", "operator": recipe.get("solve_operator") or operator}}
    layers.append(
        (x0, {"name": f"init(y) · {name}", "rgb": rgb, "metadata": meta,
              **({} if rgb else {"contrast_limits": (0.0, 1.0)}), **on_lead["image"]}, "image")
    )  # fmt: skip
    return layers
