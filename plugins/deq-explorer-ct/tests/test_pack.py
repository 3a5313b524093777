"""The pack as a user gets it: installed with pip, found through its entry point, usable."""

import math
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from deq_explorer import registry
from deq_explorer.operators.base import LinearOperator

PACK = Path(__file__).resolve().parents[1]


def _installed_elsewhere() -> bool:
    try:
        metadata.distribution("deq-explorer-ct")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The pack pip-installed into a fresh folder that is put on ``sys.path``."""
    if _installed_elsewhere():
        pytest.skip(
            "deq-explorer-ct is installed in this environment; the install/uninstall "
            "round trip needs an environment without it"
        )
    # build from a copy so that setuptools' build/ and *.egg-info stay out of the source tree
    source = tmp_path_factory.mktemp("src") / "deq-explorer-ct"
    shutil.copytree(
        PACK, source, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__")
    )
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
    )
    sys.path.insert(0, str(target))
    registry.load_plugins(reload=True)
    yield target
    if str(target) in sys.path:
        sys.path.remove(str(target))
    registry.load_plugins(reload=True)


def test_entry_point_registers_ct(site):
    assert (site / "deq_explorer_ct").is_dir()
    assert "ct" in registry.operators.names()
    entry = registry.operators.entry("ct")
    assert entry.source == "ct"
    assert entry.options() == {"angles": 60, "arc": 180.0, "preset": ""}
    assert entry.summary.startswith("Parallel-beam CT")
    op = registry.operators.build("ct:angles=30", shape=(1, 32, 32))
    assert isinstance(op, LinearOperator)
    assert op.y_shape[:2] == (1, 30)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert op.A(x).shape == (2, *op.y_shape)
    limited = registry.operators.build("ct:preset=limited-angle", shape=(1, 32, 32))
    assert math.degrees(limited.geometry.angle_step * 60) == pytest.approx(120.0)
    assert "ct" not in registry.plugin_errors()


def test_uninstalling_removes_ct(site):
    sys.path.remove(str(site))
    try:
        registry.load_plugins(reload=True)
        assert "ct" not in registry.operators.names()
        assert "ct" not in registry.plugin_errors()
    finally:
        sys.path.insert(0, str(site))
        registry.load_plugins(reload=True)
    assert "ct" in registry.operators.names()


def test_pnp_pgm_with_tv_beats_fbp():
    from deq_explorer_ct import ct

    from deq_explorer.fixedpoint import StopRule, solve
    from deq_explorer.operators.noise import add_noise

    img = resize(shepp_logan_phantom(), (48, 48), anti_aliasing=True)
    x = torch.tensor(img, dtype=torch.float32)[None, None].clamp(0, 1)
    op = ct((1, 48, 48), angles=45)
    y = add_noise(op.A(x), 0.02, torch.Generator().manual_seed(0))

    def psnr(u):
        return 10 * math.log10(1 / float(((u - x) ** 2).mean()))

    fp = registry.solvers.build(
        "pnp-pgm:gamma=1,tau=0.1", op=op, prior=registry.priors.build("tv:weight=0.02"), y=y
    )
    solution = solve(fp, rule=StopRule(max_iter=30, tol=1e-5), reference=x)
    assert psnr(solution.x) > psnr(op.init(y)) + 2.0
