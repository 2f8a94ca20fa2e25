#!/usr/bin/env bash
# Side by side: amsg across processes (`amsg bench --transport ipc|tcp`) and raw
# libzmq (../shared/anchors/zmq-raw/zmq_bench.cpp), interleaved per round on the
# same machine, then medians and ratios. Usage: ROUNDS=5 bench/compare_zmq.sh
# Output: a table on stdout; raw lines in $OUT/raw.txt (default /tmp/amsg-compare-zmq).
# amsg rows: pingpong = notified round trip (send -> remote handler -> notification
# back, one at a time); thr = notified one-way throughput (every message notified,
# server concurrency N=64, 64-byte payloads); reqresp = request/response with 64
# calls outstanding. Raw rows: DEALER/ROUTER round trip and one-way throughput
# (zmq_bench), and request/response with 64 requests outstanding (bench/zmq_reqresp.cpp):
# one frame per request, and one frame per burst of 64 (what a batching layer can
# reach at best).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-/tmp/amsg-compare-zmq}
# Library defaults unless THREADS is set (then both sides' pools get that many threads).
THREADS=${THREADS:-}
mkdir -p "$OUT"
RAW="$OUT/raw.txt"
: > "$RAW"

scripts/install-deps.sh
ZMQ_BENCH="$OUT/zmq_bench"
[ -x "$ZMQ_BENCH" ] || g++ -std=c++17 -O2 -DNDEBUG -pthread ../shared/anchors/zmq-raw/zmq_bench.cpp -o "$ZMQ_BENCH" -lzmq
ZMQ_REQRESP="$OUT/zmq_reqresp"
g++ -std=c++17 -O2 -DNDEBUG -pthread bench/zmq_reqresp.cpp -o "$ZMQ_REQRESP" -lzmq
cmake --preset release >/dev/null
cmake --build --preset release --target amsg_cli >/dev/null
AMSG=build/release/bin/amsg

raw() { # label, args...
  local label=$1; shift
  echo "system=zmq config=$label $(timeout 300 "$ZMQ_BENCH" "$@" | tr '\n' ' ')" | tee -a "$RAW"
}
amsg() { # label, args...
  local label=$1; shift
  local threads=()
  [ -n "$THREADS" ] && threads=(--threads "$THREADS")
  echo "system=amsg config=$label $(timeout 300 "$AMSG" bench --no-progress --json "${threads[@]}" "$@" | tr '\n' ' ')" | tee -a "$RAW"
}

for r in $(seq "$ROUNDS"); do
  echo "# round $r" >&2
  raw lat-ipc lat ipc:///tmp/amsg-zmq-raw.ipc 64 20000 dealerrouter
  amsg lat-ipc --transport ipc --scenario pingpong --pingpong-messages 20000
  raw lat-tcp lat tcp://127.0.0.1:5599 64 20000 dealerrouter
  amsg lat-tcp --transport tcp --scenario pingpong --pingpong-messages 20000
  raw thr-ipc thr ipc:///tmp/amsg-zmq-raw.ipc 64 3000000 dealerrouter
  amsg thr-ipc --transport ipc --scenario thr -n 64 --messages 1000000
  echo "system=zmq config=reqresp-ipc $(timeout 300 "$ZMQ_REQRESP" ipc:///tmp/amsg-zmq-raw.ipc 64 1000000)" | tee -a "$RAW"
  echo "system=zmq config=reqresp-burst-ipc $(timeout 300 "$ZMQ_REQRESP" ipc:///tmp/amsg-zmq-raw.ipc 1 1000000 64)" | tee -a "$RAW"
  amsg reqresp-ipc --transport ipc --scenario reqresp --messages 1000000
done

python3 bench/summarize_zmq.py "$RAW"
