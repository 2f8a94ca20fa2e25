#!/usr/bin/env bash
# The main job: installs what is missing, builds the release preset and runs
# `amsg demo` (a KV-cache leader and two worker processes over loopback ipc).
# Extra arguments go to `amsg demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target amsg_cli
exec build/release/bin/amsg demo "$@"
