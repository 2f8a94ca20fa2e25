#!/usr/bin/env bash
# Side by side: amsg's in-process benchmark and the seed design rebuilt in
# Rust/tokio (../shared/anchors/seed-tokio), interleaved per round on the same
# machine, then medians and ratios. Usage: ROUNDS=5 bench/compare_seed.sh
# Output: a table on stdout; raw lines in $OUT/raw.txt (default /tmp/amsg-compare).
# Threads: seed-tokio runs producer, dispatch and consumer as tasks on 2 workers.
# amsg rows use the library's defaults (a 1-thread pool; the thr producer is a
# plain thread of its own: 2 threads in all, as many as cores) unless their label
# names the change: "pool2" rows use a pool of 2 threads (3 threads in all).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-/tmp/amsg-compare}
mkdir -p "$OUT"
RAW="$OUT/raw.txt"
: > "$RAW"

SEED=$(../shared/anchors/seed-tokio/build.sh)
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target amsg_cli >/dev/null
AMSG=build/release/bin/amsg

seed() { # label, args...
  local label=$1; shift
  echo "system=seed-tokio config=$label $(timeout 300 "$SEED" "$@" | tr '\n' ' ')" | tee -a "$RAW"
}
amsg() { # label, args...
  local label=$1; shift
  echo "system=amsg config=$label $(timeout 300 "$AMSG" bench --no-progress --json "$@")" | tee -a "$RAW"
}

for r in $(seq "$ROUNDS"); do
  echo "# round $r" >&2
  seed thr-n4 thr --variant faithful --n 4 --count 1000000
  amsg thr-n4 --scenario thr -n 4
  amsg thr-n4-pool2 --scenario thr -n 4 --threads 2
  amsg thr-n4-single --scenario thr -n 4 --consumer coroutine
  seed thr-n64 thr --variant faithful --n 64 --count 1000000
  amsg thr-n64 --scenario thr -n 64
  amsg thr-n64-pool2 --scenario thr -n 64 --threads 2
  amsg thr-n64-single --scenario thr -n 64 --consumer coroutine
  seed rate rate --variant faithful --n 64 --rate 50000 --secs 4
  amsg rate --scenario rate
  amsg rate-spin50 --scenario rate --spin-us 50
  seed pingpong pingpong --variant faithful --n 64 --count 200000
  amsg pingpong --scenario pingpong --pingpong-messages 200000
  amsg pingpong-pool2 --scenario pingpong --pingpong-messages 200000 --threads 2
  amsg pingpong-thread-spin50 --scenario pingpong --pingpong-messages 200000 --consumer thread --spin-us 50
done

python3 bench/summarize_compare.py "$RAW"
