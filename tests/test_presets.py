"""The experiments' solve settings, shared by the experiment scripts and the GUI samples."""

from __future__ import annotations

import json


def test_presets_round_trip_through_a_layer_recipe_and_are_what_the_experiments_run():
    import importlib.util
    import sys
    from pathlib import Path

    from deq_explorer import presets

    for request in presets.PRESETS.values():
        assert presets.from_config(json.loads(json.dumps(request.config()))) == request
    root = Path(__file__).resolve().parents[1] / "experiments"
    sys.path.insert(0, str(root))
    try:
        spec = importlib.util.spec_from_file_location("cs_mri", root / "cs_mri.py")
        cs_mri = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cs_mri)
    finally:
        sys.path.remove(str(root))
    assert cs_mri.SOLVE == presets.options(presets.CS_MRI) and cs_mri.DEQ == presets.CS_MRI.prior
