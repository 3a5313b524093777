#!/usr/bin/env bash
# The CUDA path on a bare CUDA machine (torch installed, nothing installable, no network):
# run from the repository root as  bash scripts/gpu_check.sh
# 1. the checks and timings of deq_explorer/gpu_check.py (adjoints, one solve per operator
#    against the CPU, a short DEQ training), from the source tree;
# 2. the tests marked `cuda`, when pytest is there.
# Record its figures in BENCHMARKS.md ("GPU check").
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
status=0
"$python" -m deq_explorer.gpu_check --device "${DEVICE:-cuda}" || status=1
if "$python" -c "import pytest" 2>/dev/null; then
  "$python" -m pytest -q -m cuda -p no:cacheprovider tests || status=1
else
  echo "pytest is not installed here: the cuda-marked tests were not run"
fi
exit "$status"
