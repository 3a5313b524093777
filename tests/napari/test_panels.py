"""GUI tests of the napari plugin (run under Xvfb through pytest-xvfb)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari.utils.notifications import notification_manager  # noqa: E402
from qtpy.QtCore import Qt  # noqa: E402

from deq_explorer import api, metrics  # noqa: E402
from deq_explorer._napari import _problems  # noqa: E402
from deq_explorer._napari.compare import ComparePanel  # noqa: E402
from deq_explorer._napari.explorer import Explorer  # noqa: E402
from deq_explorer._napari.problem import ProblemPanel  # noqa: E402
from deq_explorer._napari.reconstruct import CHANGE, ERROR, STACK, ReconstructPanel  # noqa: E402
from deq_explorer._napari.train import TrainPanel  # noqa: E402
from deq_explorer.images import load_image  # noqa: E402

PLUGIN = "deq-explorer"
WIDGETS = {
    "DEQ Explorer": Explorer,
    "Problem": ProblemPanel,
    "Reconstruct": ReconstructPanel,
    "Compare": ComparePanel,
    "Train": TrainPanel,
}


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def notes():
    """Notifications (severity, message) dispatched during the test."""
    got: list[tuple[str, str]] = []

    def keep(event):
        n = event.value if hasattr(event, "value") else event
        got.append((str(n.severity), str(n.message)))

    notification_manager.notification_ready.connect(keep)
    yield got
    notification_manager.notification_ready.disconnect(keep)


def dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def compare_panel(viewer, y, ticked, max_iter):
    """The Compare panel set to compare the ``ticked`` priors on measurement ``y``."""
    compare = dock(viewer, "Compare")
    compare.reset_choices()
    compare.measurement.value = y
    compare.set_ticked(ticked)
    compare.max_iter.value = max_iter
    return compare


def small_problem(viewer, qtbot, operator="mri:rate=0.3", noise=0.01):
    """A 64² phantom measurement made through the Problem panel (and its worker)."""
    phantom = load_image("sample:phantom")[0, ::4, ::4]
    viewer.add_image(phantom, name="phantom64", contrast_limits=(0, 1))
    problem = dock(viewer, "Problem")
    problem.reset_choices()
    problem.image.value = viewer.layers["phantom64"]
    problem.operator.set_spec(operator)
    problem.noise.value = noise
    return problem, simulated(qtbot, problem)


def simulated(qtbot, problem):
    """Press Simulate and wait for the measurement layer."""
    assert problem.simulate()
    qtbot.waitUntil(lambda: not problem.busy, timeout=60_000)
    assert problem.measurement is not None, problem.status.text()
    return problem.measurement


def reconstruct_panel(viewer, y, **values):
    """The Reconstruct panel set to solve measurement ``y``, its fields set to ``values``."""
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    for name, value in values.items():
        getattr(panel, name).value = value
    return panel


def wait_done(qtbot, panel, timeout=60_000):
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=timeout)


def reconstructed(viewer, qtbot, y, prior, max_iter):
    """The Reconstruct panel after running ``prior`` on measurement ``y`` to its end."""
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.prior.set_spec(prior)
    panel.max_iter.value = max_iter
    assert panel.run(), panel.status.text()
    wait_done(qtbot, panel)
    return panel


def test_manifest_validates_with_imports():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution(PLUGIN)
    manifest.validate_imports()
    names = {w.display_name for w in manifest.contributions.widgets}
    assert names == set(WIDGETS)
    keys = {s.key for s in manifest.contributions.sample_data}
    assert {
        "brain",
        "camera",
        "astronaut",
        "phantom",
        "mri_problem",
        "mri_mismatch_problem",
        "sr_x3_problem",
        "completion_problem",
        "mcnet_sr2_problem",
    } <= keys


@pytest.mark.parametrize("name", list(WIDGETS))
def test_each_panel_docks_via_the_manifest(viewer, name):
    assert isinstance(dock(viewer, name), WIDGETS[name])


def test_samples_carry_provenance(viewer):
    for key in ("brain", "camera", "astronaut", "phantom"):
        (layer,) = viewer.open_sample(PLUGIN, key)
        assert "provenance" in layer.metadata[_problems.KEY]
    assert viewer.layers["astronaut"].rgb
    layers = viewer.open_sample(PLUGIN, "mri_problem")
    roles = [layer.metadata[_problems.KEY]["role"] for layer in layers]
    assert roles == ["ground truth", "measurement", "mask", "init"]
    y = layers[1]
    recipe = _problems.recipe_of(y)
    assert recipe["operator"] == "mri:rate=0.1" and recipe["image"] == "sample:brain"
    mask = layers[2].data
    assert 0.05 < mask.mean() < 0.15  # 10 % of k-space sampled
    problem = _problems.problem_of(y, viewer.layers)  # rebuilt from the recipe
    assert problem.x_true is not None and tuple(problem.op.x_shape) == (1, 256, 256)


def test_file_samples_reconstruct_in_the_panel(viewer, qtbot):
    (y,) = viewer.open_sample(PLUGIN, "kspace_measurement")
    recipe = _problems.recipe_of(y)
    assert recipe["file"].endswith("phantom_kspace_radial30.npz") and y.data.shape == (256, 256)
    problem = _problems.problem_of(y, viewer.layers)
    assert problem.y.is_complex() and problem.x_true is not None  # the phantom as reference
    panel = reconstructed(viewer, qtbot, y, "tv", max_iter=30)
    assert panel.last.psnr > metrics.psnr(problem.x_init(), problem.x_true) + 5
    (blurred,) = viewer.open_sample(PLUGIN, "blurred_photo")
    assert _problems.problem_of(blurred, viewer.layers).x_true is None  # no ground truth
    (volume,) = viewer.open_sample(PLUGIN, "phantom_volume")
    assert volume.data.shape == (8, 128, 128) and tuple(volume.scale) == (2.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("key", "operator", "side", "roles"),
    [
        ("mri_mismatch_problem", "mri:rate=0.2", 256, ["mask", "init"]),
        ("sr_x3_problem", "sr:scale=3,sigma=1.5", 240, ["init"]),
        ("completion_problem", "inpaint:p=0.9", 144, ["mask", "init"]),
        ("mcnet_sr2_problem", "sr-bicubic:scale=2", 144, ["init", "backbone"]),
    ],
)
def test_experiment_samples_are_problems(viewer, key, operator, side, roles):
    layers = viewer.open_sample(PLUGIN, key)
    assert [layer.metadata[_problems.KEY]["role"] for layer in layers] == [
        "ground truth", "measurement", *roles
    ]  # fmt: skip
    viewer.layers.remove(layers[1])  # forget the live problem: rebuild it from the recipe
    viewer.add_layer(layers[1])
    problem = _problems.problem_of(layers[1], viewer.layers)
    assert problem.solve_operator == operator
    assert tuple(problem.op.x_shape) == (1, side, side) and problem.x_true is not None
    np.testing.assert_allclose(problem.x_true[0, 0].cpu().numpy(), layers[0].data, atol=1e-6)


def test_simulate_then_reconstruct_to_the_end(viewer, qtbot):
    _, y = small_problem(viewer, qtbot)
    assert _problems.is_measurement(y) and y.name == "y · mri:rate=0.3 · phantom64"
    assert "mask · mri:rate=0.3 · phantom64" in viewer.layers
    assert "init(y) · mri:rate=0.3 · phantom64" in viewer.layers
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 12
    panel.tol.value = 0.0
    panel.record.value = True
    panel.every.value = 3
    assert "keeps ≤ 4 iterates" in panel.budget_info.value
    assert panel.run()
    wait_done(qtbot, panel)

    result = panel.result
    assert result.name == "tv · mri:rate=0.3 · phantom64" and result in viewer.layers
    assert result.data.shape == (64, 64) and tuple(result.contrast_limits) == (0.0, 1.0)
    assert CHANGE in viewer.layers and ERROR in viewer.layers
    meta = result.metadata[_problems.KEY]
    assert meta["status"] == "max_iter" and meta["metrics"]["iterations"] == 12
    assert (
        meta["config"]["prior"] == "tv:iters=50,weight=0.006"  # the weight from the noise (0.01)
        and meta["problem"]["operator"] == "mri:rate=0.3"
    )
    history = meta["history"]
    assert history["k"] == list(range(1, 13))
    np.testing.assert_allclose(result.data, panel.last.x[0])
    # the plot shows exactly the history
    plotted = panel.plot.data("run")
    np.testing.assert_allclose(plotted["residual"][1], history["residual"])
    np.testing.assert_allclose(plotted["psnr"][1], history["psnr"])
    assert history["psnr"][-1] > history["psnr"][0]  # the solve improves on its start
    # the iterate stack and the plot marker following the slider
    stack = viewer.layers[STACK]
    assert stack.data.shape == (4, 64, 64)
    assert stack.metadata[_problems.KEY]["iterations"] == [3, 6, 9, 12]
    viewer.dims.set_current_step(0, 1)
    assert panel.plot.marked == 6
    np.testing.assert_allclose(stack.data[-1], result.data)


def test_stop_mid_run_keeps_the_partial_result(viewer, qtbot, notes):
    _, y = small_problem(viewer, qtbot)
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 100_000
    panel.tol.value = 0.0
    assert panel.run()
    qtbot.waitUntil(lambda: len(panel.frames) >= 3, timeout=30_000)
    assert not panel.run()  # a second run is refused while one runs
    assert any("already running" in m for s, m in notes)
    panel.stop()
    wait_done(qtbot, panel)
    meta = panel.result.metadata[_problems.KEY]
    assert meta["status"] == "stopped"
    assert meta["metrics"]["iterations"] < 100_000
    assert panel.run_button.isEnabled()


def test_compare_two_priors(viewer, qtbot, tmp_path):
    _, y = small_problem(viewer, qtbot)
    panel = dock(viewer, "Compare")
    panel.reset_choices()
    panel.measurement.value = y
    panel.set_ticked(["identity", "tv"])
    panel.max_iter.value = 10
    assert panel.run()
    wait_done(qtbot, panel)
    assert viewer.canvas.grid.enabled
    names = [layer.name for layer in panel.layers.values()]
    assert names[0].startswith("identity | PSNR") and names[1].startswith("tv | PSNR")
    assert all(layer.name_overlay.visible for layer in panel.layers.values())
    rows = panel.table_rows()
    assert rows[0][0] == "prior" and [r[0] for r in rows[1:]] == ["identity", "tv"]
    assert rows[0][:3] == ["prior", "PSNR", "SSIM"]  # what is compared shows first
    psnr = {r[0]: float(r[1]) for r in rows[1:]}
    for run, name in enumerate(["identity", "tv"]):
        assert psnr[name] == pytest.approx(panel.frames[run][-1].psnr, abs=0.01)
    assert set(panel.plot.lines) == {"identity", "tv"}
    assert panel.copy_table().splitlines()[2].startswith("tv\t")
    path = panel.save_csv(tmp_path / "m.csv")
    assert path.read_text().splitlines()[1].startswith("identity,")


_ACTIVITY: list = []  # the bars made by the Train panel in a test


class _Activity:
    """Stands in for napari.utils.progress: records its total, updates and closing."""

    def __init__(self, total, desc=""):
        self.total, self.n, self.closed = total, 0, False
        _ACTIVITY.append(self)

    def update(self, n=1):
        self.n += n

    def close(self):
        self.closed = True


def test_train_registers_a_prior_seen_by_reconstruct(viewer, qtbot, tmp_path, monkeypatch):
    """Also: device and validation cadence reach the config; the activity-dock bar."""
    from skimage.io import imsave

    from deq_explorer._napari import train as train_module

    monkeypatch.setattr(train_module, "progress", _Activity)
    _ACTIVITY.clear()

    rng = np.random.default_rng(0)
    data = tmp_path / "images"
    data.mkdir()
    for i in range(4):
        imsave(data / f"im{i}.png", (rng.random((48, 48)) * 255).astype(np.uint8))
    explorer = dock(viewer, "DEQ Explorer")
    train = explorer.train
    assert "awgn" in train.mode.choices and "backbone" not in train.mode.choices  # priors only
    train.mode.value = "awgn"
    train.data.value = data
    train.steps.value = 2
    train.batch.value = 2
    train.crop.value = 32
    train.out.value = tmp_path / "tiny.safetensors"
    train.device.value = "cpu"
    train.val_every.value = 1
    config = train.config_from_form()
    assert (config.device, config.val_every) == ("cpu", 1)
    assert train.start()
    assert [a.total for a in _ACTIVITY] == [2] and train.activity is _ACTIVITY[0]
    wait_done(qtbot, train, timeout=120_000)
    bar = _ACTIVITY[0]
    assert bar.closed and bar.n == 2 and train.activity is None
    assert train.history["val_step"] == [1, 2]  # every step, as asked
    assert train.registered is not None, train.status.text()
    assert train.history["step"] and train.history["step"][-1] == 2
    assert train.registered in explorer.reconstruct.prior.choice.choices
    assert train.registered in [
        explorer.compare.prior_list.item(i).text()
        for i in range(explorer.compare.prior_list.count())
    ]


def test_train_defaults_and_an_unwritable_checkpoint(viewer, qtbot, tmp_path, notes):
    """Defaults that finish in minutes on a CPU; a bad checkpoint path stops before any step."""
    train = dock(viewer, "Train")
    config = train.config_from_form()
    assert (config.backward, config.max_iter, config.steps) == ("jfb", 20, 150)
    assert config.val_every <= config.steps and config.device == "auto"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    train.out.value = blocker / "prior.safetensors"
    assert not train.start()
    assert not train.runner.running and train.activity is None
    assert any(s == "error" and "'checkpoint' path" in m for s, m in notes)
    assert "not started" in train.status.text() and not train.history


def test_bad_input_gives_a_notification_and_the_panel_stays_usable(viewer, qtbot, notes):
    problem, y = small_problem(viewer, qtbot)
    problem.operator.set_spec("mri:rate=2")
    layers = list(viewer.layers)
    assert problem.simulate()  # the operator is checked by the core, in the worker
    qtbot.waitUntil(lambda: not problem.busy, timeout=60_000)
    assert any(s == "error" and "rate" in m for s, m in notes)
    assert problem.status.text().startswith("not simulated:") and list(viewer.layers) == layers
    assert problem.simulate_button.enabled
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.prior.choice.value = "tv"
    panel.prior.fields["weight"].widget.value = "bogus"
    panel.max_iter.value = 3
    assert panel.run()  # the spec is checked by the core, in the worker
    wait_done(qtbot, panel)
    assert any(s == "error" and "bogus" in m for s, m in notes)
    panel.prior.fields["weight"].widget.value = ""  # auto again
    assert panel.run()
    wait_done(qtbot, panel)
    assert panel.result.metadata[_problems.KEY]["status"] == "max_iter"


def test_closing_the_viewer_stops_a_running_solve(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, y = small_problem(viewer, qtbot)
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 100_000
    panel.tol.value = 0.0
    assert panel.run()
    runner = panel.runner
    qtbot.waitUntil(lambda: len(panel.frames) >= 2, timeout=30_000)
    viewer.close()
    assert runner.wait(10.0)  # the worker's generator has ended


@pytest.mark.parametrize("name", ["Reconstruct", "DEQ Explorer"])
def test_removing_the_dock_stops_its_solve(viewer, qtbot, name):
    """Also the tabbed Explorer: napari re-parents it, never the panel inside its tabs."""
    _, y = small_problem(viewer, qtbot)
    docked = dock(viewer, name)
    panel = docked.reconstruct if name == "DEQ Explorer" else docked
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 100_000
    panel.tol.value = 0.0
    assert panel.run()
    qtbot.waitUntil(lambda: len(panel.frames) >= 2, timeout=30_000)
    viewer.window.remove_dock_widget(docked)
    assert panel.runner.wait(10.0) and not panel.runner.running
    frames = len(panel.frames)
    qtbot.wait(300)
    assert len(panel.frames) == frames  # nothing arrives after the dock is gone


def test_launch_docks_the_explorer_with_a_problem_ready(viewer):
    from deq_explorer._napari.launch import open_explorer

    explorer = open_explorer(viewer)
    assert explorer.tabs.tabText(explorer.tabs.currentIndex()) == "Reconstruct"
    y = explorer.reconstruct.measurement.value
    assert y is not None and _problems.is_measurement(y)
    assert (
        explorer.reconstruct.device.value in ("CPU",) or "GPU" in explorer.reconstruct.device.value
    )


def test_deleted_panels_stop_listening_for_new_priors(viewer, qtbot):
    from qtpy.QtCore import QCoreApplication, QEvent

    from deq_explorer._napari._widgets import events

    explorer = dock(viewer, "DEQ Explorer")
    survivor = dock(viewer, "Reconstruct")
    explorer.compare.deleteLater()
    explorer.reconstruct.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    events.priors_changed.emit()  # raised "wrapped C/C++ object ... has been deleted" before
    assert "tv" in survivor.prior.choice.choices


def test_a_large_solve_is_estimated_before_it_starts(viewer, qtbot, notes, monkeypatch):
    """As in the CLI: a warning before a long solve, a refusal of one that cannot fit."""
    from deq_explorer import api

    _, y = small_problem(viewer, qtbot, operator="denoise")
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 3
    monkeypatch.setattr(api, "LARGE_PIXELS", 100)  # the 64² test image counts as large
    cost = api.Cost(seconds_per_iteration=30.0, bytes=2**30, available=2**34)
    monkeypatch.setattr(api, "estimate_cost", lambda problem, prior: cost)
    panel.max_iter.value = 10
    assert panel.run()
    wait_done(qtbot, panel)
    assert any("30.0 s per iteration" in message for _, message in notes)
    cost = api.Cost(seconds_per_iteration=0.1, bytes=2**36, available=2**34)
    assert not panel.run()
    assert any("needs about 64.0 GiB" in message for _, message in notes)


def test_the_progress_bar_is_full_when_a_solve_converges_early(viewer, qtbot):
    _, y = small_problem(viewer, qtbot, operator="denoise", noise=0.05)
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 100
    panel.tol.value = 1e-1  # converges within a few iterations
    assert panel.run()
    wait_done(qtbot, panel)
    assert panel.last.status == "converged" and panel.last.k < 100
    assert panel.progress.value() == panel.progress.maximum() == 100


def test_a_new_run_is_not_hidden_under_the_last_runs_iterates(viewer, qtbot):
    _, y = small_problem(viewer, qtbot, operator="denoise", noise=0.05)
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 4
    panel.tol.value = 0.0
    panel.record.value = True
    assert panel.run()
    wait_done(qtbot, panel)
    assert STACK in viewer.layers
    stack = viewer.layers[STACK]
    panel.every.value = 2  # recording again: the same layer, refilled and on top
    panel.prior.choice.value = "identity"
    assert panel.run()
    assert not stack.visible  # hidden while the new run streams
    wait_done(qtbot, panel)
    assert viewer.layers[STACK] is stack and stack.visible and viewer.layers[-1] is stack
    assert stack.metadata[_problems.KEY]["iterations"] == [2, 4] and stack.data.shape[0] == 2
    np.testing.assert_allclose(stack.data[-1], panel.result.data)
    panel.record.value = False
    panel.prior.choice.value = "identity"  # another result: the input itself
    assert panel.run()
    wait_done(qtbot, panel)
    assert STACK not in viewer.layers  # the stale stack no longer covers the new result
    shown = panel.result
    assert shown.visible and np.allclose(shown.data, np.asarray(panel.last.x).squeeze())


def test_deleting_the_measurement_mid_run_keeps_the_run_whole(viewer, qtbot, notes):
    _, y = small_problem(viewer, qtbot, operator="mri:rate=0.3")
    recipe = dict(_problems.recipe_of(y))
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 60
    panel.tol.value = 0.0
    assert panel.run()
    qtbot.waitUntil(lambda: panel.last is not None, timeout=30_000)
    viewer.layers.remove(y)
    wait_done(qtbot, panel)
    meta = panel.result.metadata[_problems.KEY]
    assert meta["problem"]["operator"] == recipe["operator"] == "mri:rate=0.3"
    assert meta["status"] == "max_iter"
    assert panel.status.text().startswith("stopped at the iteration cap after 60 iterations")
    assert not [m for severity, m in notes if "error" in severity.lower()]


def test_compare_gives_the_viewer_back(viewer, qtbot):
    """Restore view (and the next Reconstruct run) undo grid mode and the hidden layers."""
    _, y = small_problem(viewer, qtbot, operator="denoise", noise=0.05)
    before = {layer.name: layer.visible for layer in viewer.layers}
    compare = compare_panel(viewer, y, ["identity", "tv"], 3)
    assert compare.run()
    wait_done(qtbot, compare)
    assert viewer.canvas.grid.enabled and not any(before_layer.visible for before_layer in
                                                  (viewer.layers[n] for n in before))  # fmt: skip
    assert "all 2 runs finished" in compare.status.text()
    assert compare.restore_view()
    assert not viewer.canvas.grid.enabled
    assert {n: viewer.layers[n].visible for n in before} == before
    assert not any(layer.visible for layer in compare.layers.values())  # kept, hidden
    # compare again, then reconstruct: its result is not scattered over grid cells
    assert compare.run()
    wait_done(qtbot, compare)
    rec = dock(viewer, "Reconstruct")
    rec.reset_choices()
    rec.measurement.value = y
    rec.max_iter.value = 3
    assert rec.run()
    wait_done(qtbot, rec)
    assert not viewer.canvas.grid.enabled and rec.result.visible


def test_a_stopped_comparison_says_so(viewer, qtbot):
    _, y = small_problem(viewer, qtbot)
    compare = compare_panel(viewer, y, ["identity", "tv"], 2000)
    compare.tol.value = 0.0
    assert compare.run()
    qtbot.waitUntil(lambda: bool(compare.frames), timeout=30_000)
    compare.runner.stop()
    wait_done(qtbot, compare)
    assert compare.status.text().startswith("stopped: ")


def test_the_mcnet_sample_runs_as_documented(viewer, qtbot):
    """Backbone layer (values outside [0, 1]) or init(y) as w, with the learned β filled in."""
    from deq_explorer.registry import priors as prior_registry

    viewer.open_sample(PLUGIN, "mcnet_sr2_problem")
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    y = next(layer for layer in viewer.layers if _problems.is_measurement(layer))
    panel.measurement.value = y
    panel.prior.choice.value = "mcnet-sr2"
    panel.solver.choice.value = "mcnet-admm"
    beta = prior_registry.entry("mcnet-sr2").metadata["beta"]
    assert panel.solver.registry.options_of(panel.solver.spec)[1]["beta"] == beta
    backbone = next(layer for layer in viewer.layers if layer.name.startswith("w · "))
    backbone.data = backbone.data * 1.1 - 0.05  # a backbone's output may leave [0, 1]
    panel.max_iter.value = 3
    init = next(layer for layer in viewer.layers if layer.name.startswith("init(y) · "))
    for w in (backbone, init):
        panel.w_layer.value = w
        assert panel.run(), panel.status.text()
        wait_done(qtbot, panel)
        assert panel.last is not None and panel.last.k == 3


def test_choosing_a_learned_prior_takes_its_trained_solve(viewer):
    """Solver, accelerator and tolerance follow the prior's training; the user can still edit."""
    from deq_explorer import api

    panel = dock(viewer, "Reconstruct")
    learned = [n for n in ("deq-mri-radial10", "mtdeq", "mcnet-sr2") if api.trained_settings(n)]
    assert learned
    for name in learned:
        panel.prior.choice.value = "tv"
        panel.solver.set_spec("pnp-admm")
        panel.prior.choice.value = name
        trained = api.trained_settings(name)
        solver = trained["solver"]
        if "beta=" in solver:  # the learned β is re-written by the β pre-fill
            assert panel.solver.choice.value == solver.partition(":")[0]
        else:
            assert panel.solver.spec == solver
        if "accel" in trained:
            assert panel.accel.spec == trained["accel"]
        if "tol" in trained:
            assert panel.tol.value == pytest.approx(trained["tol"])
    panel.solver.set_spec("red-sd:gamma=0.5")  # an edit after the choice is kept
    assert panel.solver.spec == "red-sd:gamma=0.5"


def test_compare_runs_each_learned_prior_in_its_trained_solve(viewer, qtbot):
    from deq_explorer import api

    _, y = small_problem(viewer, qtbot)
    compare = compare_panel(viewer, y, ["tv", "mtdeq"], 2)
    assert compare.run()
    wait_done(qtbot, compare)
    by_prior = {c.prior: c for c in compare.configs}
    form = compare.solver.spec  # e.g. "pnp-pgm:gamma=1.0,tau=0.5"
    assert by_prior["tv"].solver == form and by_prior["tv"].accel == compare.accel.spec
    assert by_prior["mtdeq"].solver == api.trained_settings("mtdeq")["solver"] != form
    compare.trained.value = False  # one solve for all, as typed in the form
    assert compare.run()
    wait_done(qtbot, compare)
    assert {c.solver for c in compare.configs} == {form}


def test_a_checkpoint_loads_as_a_prior_and_trained_priors_come_back(viewer, tmp_path):
    from deq_explorer.priors.checkpoint import save_checkpoint, user_dir
    from deq_explorer.priors.nets import build_net
    from deq_explorer.registry import priors as prior_registry

    net = build_net("dncnn", {"depth": 3, "width": 8})
    meta = {"name": "gui-loaded-prior", "mode": "awgn", "sigma": 0.02}
    path = save_checkpoint(tmp_path / "mine.safetensors", net, meta)
    panel = dock(viewer, "Reconstruct")
    status = panel.status.text()
    assert panel.load_checkpoint(str(path)[:-3]) is None  # half-typed: not a file yet, no error
    assert panel.status.text() == status
    assert panel.load_checkpoint(str(path)) == "gui-loaded-prior"
    assert panel.prior.choice.value == "gui-loaded-prior"
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    assert panel.load_checkpoint(str(tmp_path / "bad.safetensors")) is None
    assert panel.status.text().startswith("could not load")
    prior_registry.unregister("gui-loaded-prior")
    # a prior the Train panel wrote into the user folder is listed by the next panel
    train = dock(viewer, "Train")
    assert str(train.out.value).startswith(str(user_dir()))
    user_dir().mkdir(parents=True, exist_ok=True)
    save_checkpoint(user_dir() / "kept.safetensors", net, {**meta, "name": "gui-kept-prior"})
    try:
        again = ReconstructPanel(viewer)  # as after a restart
        assert "gui-kept-prior" in again.prior.choice.choices
    finally:
        prior_registry.unregister("gui-kept-prior")
        (user_dir() / "kept.safetensors").unlink()


def test_the_measurement_choice_follows_a_new_simulation(viewer, qtbot):
    _, first = small_problem(viewer, qtbot, operator="denoise")
    rec, compare = dock(viewer, "Reconstruct"), dock(viewer, "Compare")
    rec.reset_choices()
    compare.reset_choices()
    rec.measurement.value = first
    problem = dock(viewer, "Problem")
    problem.reset_choices()
    problem.image.value = viewer.layers["phantom64"]
    problem.operator.choice.value = "deblur"
    second = simulated(qtbot, problem)
    assert second is not first
    assert rec.measurement.value is second and compare.measurement.value is second


def _heartbeat(ticks):
    """A 20 ms timer in the GUI thread that records when it fires."""
    import time

    from qtpy.QtCore import QTimer

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    return timer


def test_simulate_runs_in_a_worker_and_the_gui_keeps_ticking(viewer, qtbot, monkeypatch):
    """A 1024² MRI simulation (about 0.7 s here, all of it a GUI freeze before)."""
    import threading
    import time

    from deq_explorer import api

    real, seen = api.simulate, {}

    def simulate(*args, **kwargs):
        seen["thread"], seen["start"] = threading.get_ident(), time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            time.sleep(0.2)  # at least this long, however fast the machine
            seen["end"] = time.perf_counter()

    monkeypatch.setattr(api, "simulate", simulate)
    image = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    viewer.add_image(image, name="big")
    panel = dock(viewer, "Problem")
    panel.reset_choices()
    panel.image.value = viewer.layers["big"]
    panel.operator.set_spec("mri:rate=0.3")
    ticks: list[float] = []
    timer = _heartbeat(ticks)
    assert panel.simulate()
    assert not panel.simulate_button.enabled and not panel.progress.isHidden()
    assert not panel.simulate()  # one at a time
    qtbot.waitUntil(lambda: not panel.busy, timeout=60_000)
    timer.stop()
    assert seen["thread"] != threading.get_ident()  # not the GUI thread
    during = [t for t in ticks if seen["start"] < t < seen["end"]]
    assert len(during) >= 4  # the GUI thread served its timer while the simulation ran
    assert np.diff([seen["start"], *during, seen["end"]]).max() < 0.4  # old code: > 0.7 s
    assert panel.simulate_button.enabled and panel.progress.isHidden()
    assert panel.measurement.name == "y · mri:rate=0.3 · big"
    assert _problems.problem_of(panel.measurement, viewer.layers).y.shape == (1, 1, 1024, 1024)


def test_layers_are_named_after_their_problem(viewer, qtbot):
    problem, first = small_problem(viewer, qtbot, operator="deblur:sigma=1.0")
    again = simulated(qtbot, problem)  # the same problem: a counter, on all its layers
    assert first.name == "y · deblur:sigma=1.0 · phantom64"
    assert again.name == "y · deblur:sigma=1.0 · phantom64 (2)"
    assert "init(y) · deblur:sigma=1.0 · phantom64 (2)" in viewer.layers
    problem.operator.set_spec("inpaint:p=0.5")
    third = simulated(qtbot, problem)  # another problem: its own name, no counter
    assert third.name == "y · inpaint:p=0.5 · phantom64"
    assert "mask · inpaint:p=0.5 · phantom64" in viewer.layers
    problem.mismatch.value = True
    problem.solve_operator.set_spec("inpaint:p=0.6")
    assert simulated(qtbot, problem).name == "y · inpaint:p=0.5 → inpaint:p=0.6 · phantom64"
    assert len({layer.name for layer in viewer.layers}) == len(viewer.layers)


def _world(layer, index):
    """Where pixel ``index`` of a 2-D layer lies in the viewer's world coordinates."""
    return np.asarray(layer.data_to_world(index))


def test_an_sr_measurement_lies_over_its_ground_truth(viewer, qtbot):
    """The ×3 SR sample, and a simulation from a layer that has its own scale and offset."""
    truth, y, init = viewer.open_sample(PLUGIN, "sr_x3_problem")
    assert y.data.shape == (80, 80) and tuple(y.scale) == (3.0, 3.0)
    np.testing.assert_allclose(_world(y, (10, 20)), _world(truth, (30, 60)))  # σ 1.5: centred
    np.testing.assert_allclose(_world(init, (5, 7)), _world(truth, (5, 7)))
    viewer.add_image(np.zeros((48, 48), np.float32), name="scaled", scale=(0.5, 0.5),
                     translate=(10.0, 20.0))  # fmt: skip
    problem = dock(viewer, "Problem")
    problem.reset_choices()
    problem.image.value = viewer.layers["scaled"]
    problem.operator.set_spec("sr-bicubic:scale=3")
    y = simulated(qtbot, problem)
    init = viewer.layers["init(y) · sr-bicubic:scale=3 · scaled"]
    # imresize's pixel centres: low-resolution pixel i at 3 i + 1 of the image
    np.testing.assert_allclose(_world(y, (2, 5)), _world(viewer.layers["scaled"], (7, 16)))
    np.testing.assert_allclose(_world(init, (3, 4)), _world(viewer.layers["scaled"], (3, 4)))


def test_each_run_keeps_its_own_result_layer(viewer, qtbot):
    """Named by prior and problem; a rerun gets a counter; the user's layers stay."""
    _, y = small_problem(viewer, qtbot, operator="denoise", noise=0.05)
    mine = viewer.add_image(np.zeros((64, 64), np.float32), name="reconstruction")
    before = list(viewer.layers)
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 2
    panel.warm.value = False  # each run from init(y): identity then returns the input
    results = []
    for prior in ("tv", "identity", "tv"):
        panel.prior.choice.value = prior
        assert panel.run()
        wait_done(qtbot, panel)
        results.append(panel.result)
    assert [r.name for r in results] == [
        "tv · denoise · phantom64", "identity · denoise · phantom64",
        "tv · denoise · phantom64 (2)",
    ]  # fmt: skip
    assert all(r in viewer.layers for r in results) and len(set(map(id, results))) == 3
    assert [r.metadata[_problems.KEY]["config"]["prior"].partition(":")[0] for r in results] == [
        "tv", "identity", "tv"
    ]  # fmt: skip
    np.testing.assert_allclose(results[1].data, y.data, atol=1e-6)  # identity: the input
    assert all(layer in viewer.layers for layer in before) and not mine.data.any()
    assert [viewer.layers[n] for n in (CHANGE, ERROR)]  # the live maps stay single
    assert sum(layer.name == CHANGE for layer in viewer.layers) == 1


def test_a_saved_run_reopens_with_its_curves(viewer, qtbot, tmp_path, notes):
    """Save run… writes the CLI's --out format; napari's reader reopens it as layers."""
    import json

    _, y = small_problem(viewer, qtbot, operator="mri:rate=0.3")
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    assert not panel.save_button.isEnabled() and panel.save_run(tmp_path / "none.npz") is None
    panel.max_iter.value = 5
    panel.tol.value = 0.0
    assert panel.run()
    wait_done(qtbot, panel)
    assert panel.save_button.isEnabled()
    path = panel.save_run(tmp_path / "my run")  # the suffix is added
    assert path == tmp_path / "my run.npz" and "saved" in panel.status.text()
    history = panel.result.metadata[_problems.KEY]["history"]
    with np.load(path, allow_pickle=False) as saved:
        assert set(saved.files) == {"x", "y", "reference", "init", "history", "config"}
        assert saved["history"].dtype.names == ("k", "residual", "consistency", "psnr", "ssim")
        assert np.iscomplexobj(saved["y"]) and saved["x"].shape == (1, 64, 64)
        config = json.loads(str(saved["config"]))
        x, residual = saved["x"], saved["history"]["residual"]
    assert config["operator"] == "mri:rate=0.3" and config["status"] == "max_iter"
    assert config["prior"] == "tv:iters=50,weight=0.006" and config["iterations"] == 5
    np.testing.assert_allclose(residual, history["residual"])

    layers = viewer.open(str(path), plugin=PLUGIN)
    reopened = layers[-1]
    assert reopened.name == "tv · my run"
    np.testing.assert_allclose(reopened.data, panel.result.data)
    np.testing.assert_allclose(x[0], panel.result.data)
    meta = reopened.metadata[_problems.KEY]
    assert meta["history"]["k"] == history["k"] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(meta["history"]["psnr"], history["psnr"])
    panel.plot.clear()
    viewer.layers.selection.active = y
    viewer.layers.selection.active = reopened  # the reopened run's curves in the plot
    np.testing.assert_allclose(panel.plot.data("run")["residual"][1], history["residual"])
    # an unwritable place: a message, no crash, nothing written
    assert panel.save_run(tmp_path / "no such folder" / "r.npz") is None
    assert panel.status.text().startswith("not saved:")
    assert any(s == "error" and "Could not save" in m for s, m in notes)


def test_a_rerun_starts_from_the_last_result(viewer, qtbot):
    _, y = small_problem(viewer, qtbot, operator="deblur:sigma=1.0")
    panel = reconstructed(viewer, qtbot, y, "tv:weight=0.02", max_iter=300)
    first = panel.last
    assert first.status == "converged" and panel.config.w is None  # nothing to start from yet
    panel.prior.set_spec("tv:weight=0.021")  # a small change of a setting
    assert panel.run()
    wait_done(qtbot, panel)
    np.testing.assert_array_equal(panel.config.w[0].cpu().numpy(), first.x)
    warm = panel.last.k
    panel.warm.value = False
    assert panel.run()
    wait_done(qtbot, panel)
    assert panel.config.w is None and warm < panel.last.k  # the cold start takes longer


def test_sigma_continuation_from_the_panel(viewer, qtbot):
    _, y = small_problem(viewer, qtbot, operator="inpaint:p=0.5")
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.prior.choice.value = "dncnn-awgn"
    panel.solver.choice.value = "pnp-admm"
    panel.max_iter.value = 12
    panel.tol.value = 0.0
    panel.solve_form.continuation.value = True
    panel.solve_form.stages.value = 3
    assert not panel.solve_form.sigma_start.native.isHidden()  # shown with the switch
    assert panel.run()
    wait_done(qtbot, panel)
    assert [f.k for f in panel.frames] == list(range(1, 13)) and panel.last.status == "max_iter"
    assert panel.config.continuation == api.Continuation(0.2, 3)


def _gray_problem_panel(viewer, data, name, operator, **kwargs):
    viewer.add_image(data, name=name, **kwargs)
    panel = dock(viewer, "Problem")
    panel.reset_choices()
    panel.image.value = viewer.layers[name]
    panel.operator.set_spec(operator)
    return panel


def _failed(qtbot, panel):
    assert panel.simulate()
    qtbot.waitUntil(lambda: not panel.busy, timeout=60_000)
    return panel.status.text()


def test_12_bit_data_is_normalised_and_its_psnr_is_honest(viewer, qtbot):
    from deq_explorer.images import Scaling

    raw = np.round(load_image("sample:phantom")[0, ::4, ::4] * 4000 + 60).astype(np.uint16)
    panel = _gray_problem_panel(viewer, raw, "12bit", "mri:rate=0.3")
    assert panel.normalise.value == "percentile"  # suggested for integers beyond 8 bits
    y = simulated(qtbot, panel)
    recipe = _problems.recipe_of(y)
    problem = _problems.problem_of(y, viewer.layers)
    truth = problem.x_true[0].numpy()
    assert truth.min() == 0.0 and truth.max() == 1.0  # not near-black (÷ 65535: max 0.06)
    scaling = Scaling(**recipe["scaling"])
    assert scaling.method == "percentile" and "percentile" in panel.status.text()
    inside = (truth > 0) & (truth < 1)
    np.testing.assert_allclose(scaling.invert(truth)[inside], raw[None][inside], atol=0.05)
    assert metrics.psnr(problem.x_init(), problem.x_true) < 40  # the normalised truth: not 48 dB
    del _problems._live[y]  # rebuilt from the recipe: the same normalised truth
    again = _problems.problem_of(y, viewer.layers).x_true[0].numpy()
    np.testing.assert_array_equal(again, truth)


def test_floats_outside_the_unit_range_need_a_normalisation(viewer, qtbot):
    data = load_image("sample:phantom")[0, ::4, ::4] * 3.0 - 1.0
    panel = _gray_problem_panel(viewer, data, "wide", "mri:rate=0.3")
    assert panel.normalise.value == "percentile"
    panel.normalise.value = "none"
    layers = list(viewer.layers)
    text = _failed(qtbot, panel)
    assert text.startswith("not simulated:") and "'normalise'" in text and "--" not in text
    assert list(viewer.layers) == layers
    panel.normalise.value = "minmax"
    truth = _problems.problem_of(simulated(qtbot, panel), viewer.layers).x_true[0].numpy()
    np.testing.assert_allclose(truth, (data[None] + 1.0) / 3.0, atol=1e-5)


def test_rgb_to_gray_and_sr_crop_to_fit(viewer, qtbot):
    rgb = load_image("sample:astronaut")[:, ::8, ::8].transpose(1, 2, 0)  # 64² RGB in [0, 1]
    panel = _gray_problem_panel(viewer, rgb, "rgb", "mri:rate=0.3", rgb=True)
    text = _failed(qtbot, panel)
    assert "'to gray'" in text and "--gray" not in text
    panel.gray.value = True
    problem = _problems.problem_of(simulated(qtbot, panel), viewer.layers)
    assert problem.x_true.shape == (1, 1, 64, 64)
    panel.gray.value = False
    panel.operator.set_spec("sr-bicubic:scale=3")
    text = _failed(qtbot, panel)
    assert "'crop to fit'" in text and "--crop" not in text
    panel.crop.value = True
    problem = _problems.problem_of(simulated(qtbot, panel), viewer.layers)
    assert problem.x_true.shape == (1, 3, 63, 63)


def test_a_volume_simulates_from_the_slice_on_screen(viewer, qtbot):
    """A NIfTI volume opens as a stack; Simulate takes the slice napari shows, and the
    measurement reconstructs (rebuilt from its recipe, the same slice)."""
    from deq_explorer.sample_data import sample_path

    (volume,) = viewer.open(str(sample_path("phantom_head_8.nii.gz")), plugin="deq-explorer")
    viewer.dims.set_current_step(0, 5)
    problem = dock(viewer, "Problem")
    problem.reset_choices()
    problem.image.value = volume
    problem.operator.set_spec("mri:rate=0.3")
    y = simulated(qtbot, problem)
    recipe = _problems.recipe_of(y)
    assert recipe["slice"] == [5]
    made = _problems.problem_of(y, viewer.layers)
    np.testing.assert_allclose(made.x_true[0, 0].cpu().numpy(), volume.data[5], atol=1e-6)
    viewer.layers.remove(y)  # forget the live problem: rebuild it from the recipe
    viewer.add_layer(y)
    rebuilt = _problems.problem_of(y, viewer.layers)
    np.testing.assert_array_equal(rebuilt.x_true.cpu().numpy(), made.x_true.cpu().numpy())
    panel = reconstructed(viewer, qtbot, y, "tv", max_iter=5)
    assert panel.last.k == 5 and panel.last.psnr > metrics.psnr(made.x_init(), made.x_true)


def test_keyboard_shortcuts_run_and_stop_the_panel_in_focus(viewer, qtbot):
    _, y = small_problem(viewer, qtbot, operator="deblur:sigma=1.0")
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.max_iter.value = 100_000
    panel.tol.value = 0.0
    run, stop = panel.shortcuts
    assert run.key().toString() == "Ctrl+Return" and stop.key().toString() == "Esc"
    assert run.context() == stop.context() == Qt.ShortcutContext.WidgetWithChildrenShortcut
    run.activated.emit()
    assert panel.runner.running
    stop.activated.emit()
    wait_done(qtbot, panel)
    assert panel.last.status == "stopped"
    compare = dock(viewer, "Compare")
    assert [s.key().toString() for s in compare.shortcuts] == ["Ctrl+Return", "Esc"]


@pytest.mark.parametrize(
    ("key", "preset"), [("completion_problem", "completion-90"), ("mcnet_sr2_problem", "mcnet-sr2")]
)
def test_experiment_samples_repeat_their_experiment_when_run(viewer, qtbot, key, preset):
    """The sample's measurement carries its experiment's solve; Run gives the experiment's
    number (the same solve through the API, as experiments/*.py run it)."""
    from deq_explorer import api, metrics, presets

    viewer.open_sample(PLUGIN, key)
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    y = next(layer for layer in viewer.layers if _problems.is_measurement(layer))
    panel.measurement.value = y
    request = presets.PRESETS[preset]
    assert panel.prior.spec.startswith(request.prior)
    assert panel.max_iter.value == request.max_iter
    assert panel.solve_form.continuation.value == (request.continuation is not None)
    assert panel.run(), panel.status.text()
    wait_done(qtbot, panel, timeout=120_000)
    problem = panel.problem
    w = None
    if preset == "mcnet-sr2":  # the experiment starts from the backbone's output
        assert panel.w_layer.value.name.startswith("w · ")
        w = api.backbone(problem, "srcnn-x2")
    expected = api.reconstruct(problem, dataclasses.replace(request, w=w))
    assert panel.last.psnr == pytest.approx(metrics.psnr(expected.x, problem.x_true), abs=1e-3)


def _volume_problem(viewer, qtbot, operator="mri:rate=0.3"):
    """The 8-slice NIfTI head simulated slice by slice ("every slice")."""
    from deq_explorer.sample_data import sample_path

    (volume,) = viewer.open(str(sample_path("phantom_head_8.nii.gz")), plugin="deq-explorer")
    problem = dock(viewer, "Problem")
    problem.reset_choices()
    problem.image.value = volume
    assert not problem.whole.native.isHidden()  # offered for a stack only
    problem.whole.value = True
    problem.operator.set_spec(operator)
    return volume, simulated(qtbot, problem)


def test_a_volume_reconstructs_every_slice_in_batches(viewer, qtbot, monkeypatch, heavy):
    """Every slice simulated and solved, batch by batch, into a stack of the volume's shape
    (in workers: ``heavy`` records where the core's calls ran)."""
    from deq_explorer import stacks
    from deq_explorer._napari._run import StackRun

    monkeypatch.setattr(stacks, "MAX_BATCH", 3)  # batches of 3, 3 and 2 slices
    volume, y = _volume_problem(viewer, qtbot)
    assert y.data.shape == (8, 128, 128) and tuple(y.scale) == (2.0, 1.0, 1.0)
    init = viewer.layers["init(y) · mri:rate=0.3 · " + volume.name]
    assert init.data.shape == (8, 128, 128) and tuple(init.scale) == (2.0, 1.0, 1.0)
    stack = _problems.problem_of(y, viewer.layers)
    assert isinstance(stack, stacks.Stack) and stack.shape == (8,)
    assert _problems.recipe_of(y)["stack"] is True
    np.testing.assert_allclose(stack.at((6,)).x_true[0, 0].numpy(), volume.data[6], atol=1e-6)
    assert ("simulate_stack", False) in heavy and not [c for c in heavy if c[1]]
    del _problems._live[y]  # forget the live stack: rebuilt from the recipe, the same
    rebuilt = _problems.problem_of(y, viewer.layers)
    heavy.clear()  # that rebuild was the test's, in this thread
    assert rebuilt is not stack and torch_equal(rebuilt.measurements(), stack.measurements())

    panel = reconstruct_panel(viewer, y, max_iter=6, tol=0.0)
    panel.prior.choice.value = "tv"
    batches = set()
    add = StackRun.add
    monkeypatch.setattr(StackRun, "add",
                        lambda run, fs: (batches.update((f.start, f.stop) for f in fs),
                                         add(run, fs)))  # fmt: skip
    assert panel.run()
    wait_done(qtbot, panel)
    result = panel.result
    assert result.data.shape == (8, 128, 128) and tuple(result.scale) == (2.0, 1.0, 1.0)
    assert batches == {(0, 3), (3, 6), (6, 8)}
    assert panel.model.live_text().startswith("images 7–8 of 8 (batches of 3) · iteration 6")
    meta = result.metadata[_problems.KEY]
    assert meta["stack"] == {"shape": [8], "batch": 3} and meta["status"] == "max_iter"
    assert meta["images"]["iterations"] == [6] * 8 and None not in meta["images"]["psnr"]
    request, seen = panel.config, len(heavy)
    for i in (0, 4, 7):  # each slice as if solved alone
        alone = api.reconstruct(rebuilt.problems[i], request)
        np.testing.assert_allclose(result.data[i], alone.x[0, 0].numpy(), atol=1e-5)
        assert meta["images"]["psnr"][i] == pytest.approx(alone.history["psnr"][-1], abs=1e-3)
    del heavy[seen:]  # the test's own solves
    assert panel.progress.value() == panel.progress.maximum() == 8 * 6
    assert panel.status.text().startswith("8 images: 8 stopped at the iteration cap")
    assert panel.plot.xlabel == "image"
    np.testing.assert_allclose(panel.plot.data("PSNR per image")["psnr"][1],
                               meta["images"]["psnr"])  # fmt: skip
    assert not panel.save_button.isEnabled()  # a stack is saved as its layer

    # Stop: the batch under way ends, no later one starts; solved slices stay
    panel.max_iter.value = 100_000
    assert panel.run()
    qtbot.waitUntil(lambda: panel.last is not None, timeout=30_000)
    panel.stop()
    wait_done(qtbot, panel)
    meta = panel.result.metadata[_problems.KEY]
    assert meta["status"] == "stopped" and meta["images"]["status"][:3] == ["stopped"] * 3
    assert meta["images"]["status"][3:] == [None] * 5 and panel.result.data.shape == (8, 128, 128)
    assert panel.status.text().startswith("3 of 8 images solved: 3 stopped by you")

    # Compare takes the slice on screen
    viewer.dims.set_current_step(0, 5)
    compare = compare_panel(viewer, y, ["identity"], 2)
    assert compare.run()
    assert "on image 6 …" in compare.status.text()
    wait_done(qtbot, compare)
    assert compare.model.runs[0].problem is rebuilt.problems[5]
    assert {"run_stack", "run"} <= {name for name, _ in heavy}
    assert not [name for name, in_gui in heavy if in_gui]


def torch_equal(a, b):
    import torch

    return bool(torch.equal(a, b))


def test_an_empty_viewer_shows_how_to_begin(viewer):
    """`napari -w deq-explorer`: no image yet, so the Problem panel says where to get one."""
    from deq_explorer._napari.problem import HINT

    explorer = dock(viewer, "DEQ Explorer")
    assert explorer.tabs.tabText(explorer.tabs.currentIndex()) == "Problem"
    assert explorer.problem.status.text() == HINT
    assert "File ▸ Open Sample ▸ DEQ Explorer" in HINT and "File ▸ Open File" in HINT
    viewer.open_sample(PLUGIN, "camera")
    explorer.reset_choices()  # napari calls it on every layer change
    assert explorer.problem.status.text() == ""
    viewer.layers.clear()
    explorer.reset_choices()
    assert explorer.problem.status.text() == HINT


def test_the_arrow_keys_step_through_the_recorded_iterates(viewer, qtbot):
    """napari's Left/Right step the slider last used: the run makes it the iteration axis."""
    from napari.utils.shortcuts import default_shortcuts

    keys = {name: [str(k) for k in default_shortcuts[f"napari:increment_dims_{name}"]]
            for name in ("left", "right")}  # fmt: skip
    assert keys == {"left": ["Left"], "right": ["Right"]}
    _, y = small_problem(viewer, qtbot, operator="denoise", noise=0.05)
    viewer.add_image(np.zeros((2, 3, 64, 64), np.float32), name="a 4-D layer")
    viewer.dims.last_used = 0  # the arrows stepped another axis before the run
    panel = reconstruct_panel(viewer, y, max_iter=8, tol=0.0, record=True, every=2)
    assert "Left/Right" in panel.record.tooltip
    assert panel.run()
    wait_done(qtbot, panel)
    axis = viewer.dims.ndim - viewer.layers[STACK].ndim
    assert axis == 1 and viewer.dims.last_used == axis  # the iterations' slider
    assert viewer.dims.axis_labels[axis] == "iteration"
    canvas = viewer.window._qt_viewer.canvas.native
    viewer.dims.set_current_step(axis, 0)
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    qtbot.keyClick(canvas, Qt.Key.Key_Right)
    assert viewer.dims.current_step[axis] == 2 and panel.plot.marked == 6  # iterates 2, 4, 6, 8
    qtbot.keyClick(canvas, Qt.Key.Key_Left)
    assert viewer.dims.current_step[axis] == 1 and panel.plot.marked == 4


@pytest.fixture
def heavy(monkeypatch):
    """The core's heavy calls, each recorded with whether it ran in the GUI (main) thread."""
    import threading

    from deq_explorer import stacks, training

    calls: list[tuple[str, bool]] = []

    def recorded(module, name):
        real = getattr(module, name)

        def call(*args, **kwargs):
            calls.append((name, threading.current_thread() is threading.main_thread()))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, call)

    for module, name in ((api, "simulate"), (api, "run"), (training, "train"),
                         (stacks, "simulate_stack"), (stacks, "run_stack")):  # fmt: skip
        recorded(module, name)
    return calls


def _tiny_dataset(folder):
    from skimage.io import imsave

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        imsave(folder / f"im{i}.png", (rng.random((48, 48)) * 255).astype(np.uint8))
    return folder


def test_a_whole_session_leaves_no_worker_and_no_layer_hidden_or_lost(
    viewer, qtbot, tmp_path, heavy
):
    """Open a sample → simulate → reconstruct → compare → train → use the prior → close the
    dock mid-run → reopen. Every heavy call ran in a worker, none is left running, and the
    layers are all there, shown as before the comparison."""
    from qtpy.QtCore import QThreadPool

    from deq_explorer.registry import priors as prior_registry

    explorer = dock(viewer, "DEQ Explorer")
    (truth,) = viewer.open_sample(PLUGIN, "phantom")
    explorer.reset_choices()
    problem = explorer.problem
    problem.image.value = truth
    problem.operator.set_spec("deblur:sigma=1.0")
    y = simulated(qtbot, problem)

    rec = explorer.reconstruct
    rec.reset_choices()
    assert rec.measurement.value is y  # follows the new measurement
    rec.prior.choice.value = "tv"
    rec.max_iter.value = 4
    assert rec.run()
    wait_done(qtbot, rec)
    before = {layer.name: layer.visible for layer in viewer.layers}
    assert all(before.values())

    compare = explorer.compare
    compare.reset_choices()
    compare.set_ticked(["identity", "tv"])
    compare.max_iter.value = 3
    assert compare.run()
    wait_done(qtbot, compare)
    assert viewer.canvas.grid.enabled and not any(viewer.layers[n].visible for n in before)

    train = explorer.train
    train.mode.value = "awgn"
    train.data.value = _tiny_dataset(tmp_path / "images")
    train.steps.value, train.val_every.value = 2, 2
    train.batch.value, train.crop.value = 2, 32
    train.device.value = "cpu"
    train.out.value = tmp_path / "session.safetensors"
    assert train.start()
    wait_done(qtbot, train, timeout=120_000)
    trained = train.registered
    try:
        assert trained in rec.prior.choice.choices, train.status.text()
        rec.prior.choice.value = trained
        rec.max_iter.value = 3
        assert rec.run()
        wait_done(qtbot, rec)
        assert rec.last.k == 3 and rec.result.name.startswith(trained.partition(":")[0])
        assert not viewer.canvas.grid.enabled  # the comparison's arrangement given back
        assert {n: viewer.layers[n].visible for n in before} == before
        names = [layer.name for layer in viewer.layers]

        rec.max_iter.value = 100_000  # close the dock in the middle of a solve
        rec.tol.value = 0.0
        assert rec.run()
        qtbot.waitUntil(lambda: len(rec.frames) >= 2, timeout=30_000)
        viewer.window.remove_dock_widget(explorer)
        panels = (explorer.problem, rec, compare, train)
        assert all(p.runner.wait(10.0) and not p.runner.running for p in panels)

        again = dock(viewer, "DEQ Explorer")
        assert trained in again.reconstruct.prior.choice.choices
        assert QThreadPool.globalInstance().waitForDone(10_000)  # no worker thread left
        assert not any(p.runner.running for p in (again.problem, again.reconstruct,
                                                   again.compare, again.train))  # fmt: skip
        assert all(n in viewer.layers for n in names)  # none lost
        compared = {layer.name for layer in compare.layers.values()}
        # none hidden but the comparison's results, kept in the list (tick to show them)
        assert all(viewer.layers[n].visible != (n in compared) for n in names)
        assert {n: viewer.layers[n].visible for n in before} == before
    finally:
        if trained in prior_registry:
            prior_registry.unregister(trained)
    done = {name for name, _ in heavy}
    assert {"simulate", "run", "train"} <= done
    assert not [name for name, in_gui in heavy if in_gui]  # all of it in workers


def test_an_auto_strength_is_tuned_in_the_worker_and_its_candidates_shown(viewer, qtbot):
    """``tv:weight=auto``: the candidates come before the frames, the status shows them, the
    result records the value chosen and every candidate."""
    _, y = small_problem(viewer, qtbot, operator="deblur", noise=0.02)
    panel = dock(viewer, "Reconstruct")
    panel.reset_choices()
    panel.measurement.value = y
    panel.prior.set_spec("tv:weight=auto")
    panel.max_iter.value = 15
    assert panel.prior.spec.startswith("tv:weight=auto")
    texts = []
    assert panel.run(), panel.status.text()
    texts.append(panel.status.text())
    qtbot.waitUntil(lambda: bool(panel.model.candidates) or not panel.runner.running)
    wait_done(qtbot, panel)
    run = panel.model
    assert texts[0].startswith("choosing weight from the data")
    assert run.tuning is not None and len(run.candidates) >= 3
    assert tuple(run.candidates) == run.tuning.candidates
    assert "weight = " in panel.status.text() and panel.last.k >= 1
    config = panel.result.metadata[_problems.KEY]["config"]
    assert config["prior"] == run.tuning.spec and len(config["tuning"]["candidates"]) >= 3
