#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): one table, about 5 minutes on an H200 up to its fid
# row; without a GPU it says so and runs its CPU fallback. Arguments go to the script, e.g.
#   benchmarks/gpu_check.sh --data-root ../shared/celeba
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 || echo python )}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
