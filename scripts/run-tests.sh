#!/usr/bin/env bash
# Builds and runs the whole test suite (dev preset: debug, warnings as errors).
# With a preset name (asan, tsan, release) runs the suite under that preset instead.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-dev}"
scripts/install-deps.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
ctest --preset "$preset"
