#!/usr/bin/env bash
# Side by side: a leader and W workers through amsg's Cohort (`amsg bench
# --transport ipc --scenario fanout`) and raw ZeroMQ (../shared/anchors/fanout-raw),
# interleaved per round and per W, then medians and ratios.
# Usage: ROUNDS=3 WORKERS="1 2 4 8 16 32" [UCX=1] bench/compare_fanout.sh
# UCX=1: amsg over its UCX link too (`--transport ucx`, loopback, shared memory
# between the processes), interleaved the same way, in a table of its own.
# Output: a table on stdout; raw lines in $OUT/raw.txt (default /tmp/amsg-compare-fanout);
# $OUT/fanout.svg plots both against W (docs/img/fanout.svg; needs python3-matplotlib).
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
    if [ "${UCX:-0}" = 1 ]; then
      echo "system=amsg-ucx $(UCX_NET_DEVICES=lo timeout 300 "$AMSG" bench --no-progress --json --transport ucx \
        --scenario fanout --workers "$w" --broadcasts 2000)" | tee -a "$RAW"
    fi
  done
done

# One script: the table, then the plot (p50 and p99 broadcast latency, and the
# pipelined rate, against W) when Debian's python3-matplotlib is there.
/usr/bin/python3 - "$RAW" "$OUT/fanout.svg" <<'PY'
import json, re, statistics, sys
raw, ours, ucx = {}, {}, {}
for line in open(sys.argv[1]):
    if line.startswith("system=zmq"):
        kv = dict(re.findall(r"(\w+)=([0-9.]+)", line))
        raw.setdefault(int(kv["workers"]), []).append(
            (float(kv["bcast_us_p50"]), float(kv["bcast_us_p99"]), float(kv["pipelined_worker_msgs_per_s"])))
    elif line.startswith("system=amsg"):
        name, _, rest = line.partition(" ")
        j = json.loads(rest)
        (ucx if name == "system=amsg-ucx" else ours).setdefault(int(j["workers"]), []).append(
            (j["p50_us"], j["p99_us"], j["worker_msgs_per_s"]))
ws = sorted(set(raw) & set(ours))
md = lambda rows, i: statistics.median(r[i] for r in rows)
for title, d in (("amsg over ipc", ours), ("amsg over UCX", ucx)):
    if not d:
        continue
    print(f"\n{title}, beside raw ZeroMQ over ipc:\n")
    print("| workers | raw p50 µs | amsg p50 µs | p50 ratio (target ≤ 1.25) | raw p99 µs | amsg p99 µs "
          "| raw worker-msg/s | amsg worker-msg/s | rate ratio (target ≥ 0.8) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w in ws:
        if w not in d:
            continue
        a, b = raw[w], d[w]
        print(f"| {w} | {md(a,0):.0f} | {md(b,0):.0f} | {md(b,0)/md(a,0):.2f}x | {md(a,1):.0f} | {md(b,1):.0f} "
              f"| {md(a,2):,.0f} | {md(b,2):,.0f} | {md(b,2)/md(a,2):.2f}x |")
try:
    import matplotlib
except ImportError:
    sys.exit(print("(no plot: install python3-matplotlib)", file=sys.stderr))
matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"
import matplotlib.pyplot as plt
fig, (lat, rate) = plt.subplots(1, 2, figsize=(11, 4))
for name, d, style, color in (("raw ZeroMQ", raw, "o-", "C0"), ("amsg Cohort", ours, "s-", "C1"),
                              ("amsg Cohort over UCX", ucx, "^-", "C2")):
    if not d:
        continue
    lat.plot(ws, [md(d[w], 0) for w in ws], style, color=color, label=f"{name} p50")
    lat.plot(ws, [md(d[w], 1) for w in ws], style, color=color, alpha=0.4, label=f"{name} p99")
    rate.plot(ws, [md(d[w], 2) / 1000 for w in ws], style, color=color, label=name)
for ax in (lat, rate):
    ax.set_xscale("log", base=2)
    ax.set_xticks(ws)
    ax.set_xticklabels([str(w) for w in ws])
    ax.set_xlabel("workers (processes, 2 vCPUs)")
    ax.grid(True, alpha=0.3)
    ax.legend()
lat.set_yscale("log")
lat.set_ylabel("broadcast completion, µs (one at a time)")
rate.set_ylabel("k worker-messages/s (16 broadcasts in flight)")
where = "raw ZeroMQ and amsg over ipc, amsg over UCX" if ucx else "over ipc"
fig.suptitle(f"A leader and W workers ({where}): medians of {len(next(iter(ours.values())))} interleaved rounds")
fig.tight_layout()
fig.savefig(sys.argv[2])
print(f"plot: {sys.argv[2]}", file=sys.stderr)
PY
