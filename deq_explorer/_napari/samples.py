"""File ▸ Open Sample ▸ DEQ Explorer: offline images and the experiments' problems.

Every layer carries its provenance in ``metadata["deq_explorer"]``. Images
come from :func:`deq_explorer.images.load_image` (files shipped with
scikit-image and matplotlib; nothing is downloaded).
"""

from __future__ import annotations

from deq_explorer import api
from deq_explorer._napari._convert import LayerData, to_layer_data
from deq_explorer._napari._problems import (
    KEY,
    file_measurement,
    measurement_recipe,
    problem_layers,
    problem_name,
)
from deq_explorer.images import center_crop, load_image, sample_info, to_gray
from deq_explorer.presets import PRESETS
from deq_explorer.sample_data import sample_path

__all__ = [
    "astronaut",
    "blurred_photo",
    "brain",
    "camera",
    "completion_problem",
    "kspace_measurement",
    "mcnet_sr2_problem",
    "mri_mismatch_problem",
    "mri_problem",
    "phantom",
    "phantom_volume",
    "sr_x3_problem",
]


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


def _measured(file: str, operator: str, noise: float, reference: str | None) -> list[LayerData]:
    """A measurement from ``sample_data/``: its picture, with the recipe that reads the file."""
    return [file_measurement(str(sample_path(file)), operator, noise, f"y · {file}", reference)]


def kspace_measurement() -> list[LayerData]:
    """Measured k-space (phantom, 30 % radial, σ 0.005) from a file, with the phantom as reference.

    Reconstruct it like any measurement; the file is what ``--measurement`` reads.
    """
    return _measured("phantom_kspace_radial30.npz", "mri:rate=0.3", 0.005, "sample:phantom")


def blurred_photo() -> list[LayerData]:
    """A blurred, noisy photo (Gaussian σ 2 px, noise 0.01) from a file; no ground truth."""
    return _measured("astronaut_blur_sigma2.npz", "deblur:sigma=2.0", 0.01, None)


def phantom_volume() -> list[LayerData]:
    """A synthetic 8-slice head volume (NIfTI, 1 × 1 × 2 mm voxels) through the NIfTI reader."""
    from deq_explorer._napari.readers import read_volumes

    return read_volumes(str(sample_path("phantom_head_8.nii.gz")))


def mri_problem(rate: float = 0.1, noise: float = 0.01, seed: int = 0) -> list[LayerData]:
    """Brain MRI at ``rate`` radial sampling: ground truth, k-space, mask and zero-filled init.

    The setting of experiment 1 (CS-MRI, first seed paper), whose solve the measurement
    carries: ``deq-mri-radial10`` with SD-RED and Anderson (Run repeats it); compare with
    ``dncnn-mri``.
    """
    return _problem(
        _image("brain"), "sample:brain", f"mri:rate={rate}", noise, seed, preset="cs-mri"
    )[0]


def mri_mismatch_problem() -> list[LayerData]:
    """Experiment 1, Fig. 3: 10 % radial data reconstructed with the 20 % operator model."""
    return _problem(
        _image("brain"), "sample:brain", "mri:rate=0.1", 0.01, 0, solve_operator="mri:rate=0.2",
        preset="cs-mri",
    )[0]  # fmt: skip


def sr_x3_problem() -> list[LayerData]:
    """Experiment 2: ×3 SR with a Gaussian kernel σ 1.5, noise 0.01 (``deq-sr`` is mismatched)."""
    truth = _experiment_image("camera", 240)
    return _problem(truth, "layer:camera 240²", "sr:scale=3,sigma=1.5", 0.01, 0, preset="sr-x3")[0]


def completion_problem() -> list[LayerData]:
    """Experiment 3: 90 % of the pixels dropped, no noise; its solve (``mtdeq``, PnP-ADMM with
    σ continuation) comes with the measurement. Compare with ``dncnn-awgn``."""
    truth = _experiment_image("camera", 144)
    return _problem(truth, "layer:camera 144²", "inpaint:p=0.9", 0.0, 0, preset="completion-90")[0]


def mcnet_sr2_problem() -> list[LayerData]:
    """Experiment 4: ×2 bicubic SR of the astronaut's luma with the ``srcnn-x2`` backbone output.

    The measurement carries the solve: prior ``mcnet-sr2`` in ``mcnet-admm`` with its learned
    β; give the backbone layer as ``w``.
    """
    truth = _experiment_image("astronaut", 144)
    name = "w · srcnn-x2"  # the experiment starts from the backbone's output
    layers, problem = _problem(
        truth, "layer:astronaut 144²", "sr-bicubic:scale=2", 0.0, 0, preset="mcnet-sr2",
        start_layer=name,
    )  # fmt: skip
    w, _ = to_layer_data(api.backbone(problem, "srcnn-x2")[0].cpu().numpy())
    meta = {KEY: {"role": "backbone", "backbone": "srcnn-x2", "operator": "sr-bicubic:scale=2"}}
    layers.append((w, {"name": name, "contrast_limits": (0.0, 1.0), "metadata": meta}, "image"))
    return layers


def _experiment_image(name: str, side: int) -> LayerData:
    """Centre ``side``² crop of a sample's luma, as the experiment scripts use it."""
    crop = center_crop(to_gray(load_image(f"sample:{name}")), side)[0]
    meta = {
        KEY: {
            "role": "ground truth",
            "source": f"sample:{name}",
            "provenance": f"centre {side}² crop of the luma of sample:{name} "
            f"({sample_info(name)['source']})",
        }
    }
    return (
        crop,
        {"name": f"{name} {side}²", "metadata": meta, "contrast_limits": (0.0, 1.0)},
        "image",
    )


def _problem(
    truth: LayerData,
    source: str,
    operator: str,
    noise: float,
    seed: int,
    solve_operator: str | None = None,
    preset: str | None = None,
    start_layer: str | None = None,
) -> tuple[list[LayerData], api.Problem]:
    """Truth, measurement (with its recipe), mask if any, ``init(y)``; and the problem.

    The layers are named after the problem (``y · sr:scale=3,sigma=1.5 · camera 240²``) and
    the measurement lies over the truth (a ×3 SR measurement at scale 3). ``preset`` names
    the experiment's solve (:data:`deq_explorer.presets.PRESETS`), kept in the recipe for
    the Reconstruct panel with ``start_layer``, the layer its solve starts from (``w``).
    """
    image = load_image(source) if source.startswith("sample:") else truth[0][None]
    problem = api.simulate(
        image, operator, noise=noise, seed=seed, solve_operator=solve_operator, device="auto"
    )
    recipe = measurement_recipe(source, operator, noise, seed, solve_operator, "auto")
    recipe["provenance"] = f"{operator} with noise σ = {noise} applied to {source}, seed {seed}"
    if solve_operator:
        recipe["provenance"] += f"; reconstructed with the model {solve_operator}"
    if preset is not None:
        recipe["preset"] = {"name": preset, **PRESETS[preset].config(), "start_layer": start_layer}
    name = problem_name(operator, truth[1]["name"], solve_operator)
    return [truth, *problem_layers(problem, recipe, name)], problem
