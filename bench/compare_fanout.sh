#!/usr/bin/env bash
# Side by side: a leader and W workers through amsg's Cohort (`amsg bench
# --transport ipc --scenario fanout`) and raw ZeroMQ (../shared/anchors/fanout-raw),
# interleaved per round and per W, then medians and ratios.
# Usage: ROUNDS=3 WORKERS="1 2 4 8 16 32" bench/compare_fanout.sh
# Output: a table on stdout; raw lines in $OUT/raw.txt (default /tmp/amsg-compare-fanout).
# Both: 64-byte echoes over ipc; broadcast latency one at a time (2000), then
# worker-messages per second with 16 broadcasts in flight. Library defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-1 2 4 8 16 32}
OUT=${OUT:-/tmp/amsg-compare-fanout}
mkdir -p "$OUT"
RAW="$OUT/raw.txt"
: > "$RAW"

scripts/install-deps.sh
FANOUT="$OUT/fanout"
[ -x "$FANOUT" ] || g++ -std=c++17 -O2 -DNDEBUG ../shared/anchors/fanout-raw/fanout.cpp -o "$FANOUT" -lzmq
cmake --preset release >/dev/null
cmake --build --preset release --target amsg_cli >/dev/null
AMSG=build/release/bin/amsg

for r in $(seq "$ROUNDS"); do
  echo "# round $r" >&2
  for w in $WORKERS; do
    echo "system=zmq $(timeout 300 "$FANOUT" "$w" 2000)" | tee -a "$RAW"
    echo "system=amsg $(timeout 300 "$AMSG" bench --no-progress --json --transport ipc --scenario fanout \
      --workers "$w" --broadcasts 2000)" | tee -a "$RAW"
  done
done

python3 - "$RAW" <<'PY'
import json, re, statistics, sys
raw, ours = {}, {}
for line in open(sys.argv[1]):
    if line.startswith("system=zmq"):
        kv = dict(re.findall(r"(\w+)=([0-9.]+)", line))
        raw.setdefault(int(kv["workers"]), []).append(
            (float(kv["bcast_us_p50"]), float(kv["bcast_us_p99"]), float(kv["pipelined_worker_msgs_per_s"])))
    elif line.startswith("system=amsg"):
        j = json.loads(line[len("system=amsg "):])
        ours.setdefault(int(j["workers"]), []).append((j["p50_us"], j["p99_us"], j["worker_msgs_per_s"]))
md = lambda rows, i: statistics.median(r[i] for r in rows)
print("| workers | raw p50 µs | amsg p50 µs | p50 ratio (target ≤ 1.25) | raw p99 µs | amsg p99 µs "
      "| raw worker-msg/s | amsg worker-msg/s | rate ratio (target ≥ 0.8) |")
print("|---|---|---|---|---|---|---|---|---|")
for w in sorted(set(raw) & set(ours)):
    a, b = raw[w], ours[w]
    print(f"| {w} | {md(a,0):.0f} | {md(b,0):.0f} | {md(b,0)/md(a,0):.2f}x | {md(a,1):.0f} | {md(b,1):.0f} "
          f"| {md(a,2):,.0f} | {md(b,2):,.0f} | {md(b,2)/md(a,2):.2f}x |")
PY
