#!/usr/bin/env bash
# The main job: installs what is missing, builds the release preset, runs `amsg bench`.
# Extra arguments go to `amsg bench` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target amsg_cli
exec build/release/bin/amsg bench "$@"
