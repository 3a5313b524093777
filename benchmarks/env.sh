#!/usr/bin/env bash
# Create the benchmark environment: deepinv needs torchvision, which pins torch 2.14.1 (a CUDA
# build that also runs on CPU, ~5.5 GB), so it lives in its own venv, never the test environment.
#
#   bash benchmarks/env.sh [VENV]          # default VENV=/work/benchenv
#   $VENV/bin/python benchmarks/vs_deepinv.py
#   $VENV/bin/python benchmarks/deq_peers.py
#   $VENV/bin/python -m pytest plugins/deq-explorer-deepinv/tests
set -euo pipefail
VENV="${1:-/work/benchenv}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
# pins that keep every later install from moving torch
printf 'torch==2.14.1\ntorchvision==0.29.1\n' >"$CONSTRAINTS"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install -c "$CONSTRAINTS" torch==2.14.1 torchvision==0.29.1
"$VENV/bin/pip" install -c "$CONSTRAINTS" deepinv==0.5.0 torchdeq==0.1.0 \
    numpy scikit-image matplotlib PyWavelets safetensors pytest
# the explorer (core deps above; no Qt/napari needed for benchmarks) and the deepinv pack
"$VENV/bin/pip" install -c "$CONSTRAINTS" --no-deps -e "$ROOT"
"$VENV/bin/pip" install -c "$CONSTRAINTS" --no-deps -e "$ROOT/plugins/deq-explorer-deepinv"
"$VENV/bin/python" - <<'PY'
import deepinv, torch, torchdeq
from deq_explorer.registry import operators, plugin_errors
assert torch.__version__.startswith("2.14.1"), torch.__version__
assert not plugin_errors(), plugin_errors()
print("torch", torch.__version__, "deepinv", deepinv.__version__,
      "packs ok:", [n for n in operators.names() if n.startswith("dinv-")])
PY
