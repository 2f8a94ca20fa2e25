#!/usr/bin/env bash
# Side by side: amsg over its UCX link (`amsg bench --transport ucx`), raw UCX
# active messages (../shared/anchors/ucx-event/ucx_am_pingpong.c) and raw
# ZeroMQ (../shared/anchors/zmq-raw/zmq_bench.cpp), interleaved per round on the
# same machine, then medians and ratios. Usage: ROUNDS=3 bench/compare_ucx.sh
# Output: a table on stdout; raw lines in $OUT/raw.txt (default /tmp/amsg-compare-ucx).
#
# Rows: round trip (64-byte payloads, one at a time; amsg: a call answered by a
# remote handler) over shared memory (UCX picks it between processes of one
# host) and over tcp (UCX_TLS=tcp), event-driven (the default: both sides sleep
# when idle) and busy polling (--busy-poll / --poll); the same with a 500 µs
# pause before each call (sparse traffic); amsg's notified one-way throughput
# (N=64) and request/response with 64 outstanding. Everything stays on
# loopback (UCX_NET_DEVICES=lo). The raw UCX "shm" configuration is the
# anchor's: UCX_TLS=posix,sysv,cma,self,tcp UCX_MM_ERROR_HANDLING=y, error mode PEER.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N=${N:-20000}
OUT=${OUT:-/tmp/amsg-compare-ucx}
mkdir -p "$OUT"
RAW="$OUT/raw.txt"
: > "$RAW"
export UCX_NET_DEVICES=lo

scripts/install-deps.sh
ZMQ_BENCH="$OUT/zmq_bench"
[ -x "$ZMQ_BENCH" ] || g++ -std=c++17 -O2 -DNDEBUG -pthread ../shared/anchors/zmq-raw/zmq_bench.cpp -o "$ZMQ_BENCH" -lzmq
UCX_PP="$OUT/ucx_am_pingpong"
[ -x "$UCX_PP" ] || gcc -O2 ../shared/anchors/ucx-event/ucx_am_pingpong.c -o "$UCX_PP" -lucp -lucs
cmake --preset release >/dev/null
cmake --build --preset release --target amsg_cli >/dev/null
AMSG=build/release/bin/amsg
SHM="UCX_TLS=posix,sysv,cma,self,tcp UCX_MM_ERROR_HANDLING=y"
TCP="UCX_TLS=tcp"

zmq() { # label, args...
  local label=$1; shift
  echo "system=zmq config=$label $(timeout 300 "$ZMQ_BENCH" "$@" | tr '\n' ' ')" | tee -a "$RAW"
}
ucx() { # label, env, mode, client args...
  local label=$1 envs=$2 mode=$3; shift 3
  local so="$OUT/server.out"
  : > "$so"
  env $envs timeout 120 "$UCX_PP" server --port 0 --max-s 100 "$mode" > "$so" 2>&1 &
  local spid=$! port=""
  for _ in $(seq 200); do  # up to 10 s for the server's "port=N" line
    port=$(sed -n 's/^port=\([0-9]*\).*/\1/p' "$so")
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    echo "system=ucx config=$label status=server_failed" | tee -a "$RAW"
    kill "$spid" 2>/dev/null || true
    return
  fi
  local line
  line=$(env $envs timeout 60 "$UCX_PP" client --port "$port" --max-s 55 "$mode" -n "$N" "$@" 2>&1 | tail -1) || true
  wait "$spid" 2>/dev/null || true
  echo "system=ucx config=$label $line" | tee -a "$RAW"
}
amsg() { # label, env, args...
  local label=$1 envs=$2; shift 2
  echo "system=amsg config=$label $(env $envs timeout 300 "$AMSG" bench --no-progress --json --transport ucx "$@" | tr '\n' ' ')" | tee -a "$RAW"
}

for r in $(seq "$ROUNDS"); do
  echo "# round $r" >&2
  zmq lat-ipc lat ipc:///tmp/amsg-zmq-raw.ipc 64 "$N" dealerrouter
  ucx lat-shm-event "$SHM" --event
  amsg lat-shm-event "" --scenario pingpong --pingpong-messages "$N"
  ucx lat-shm-poll "$SHM" --poll
  amsg lat-shm-poll "" --scenario pingpong --pingpong-messages "$N" --busy-poll
  ucx gap-shm-event "$SHM" --event --gap-us 500
  amsg gap-shm-event "" --scenario pingpong --pingpong-messages 5000 --gap-us 500
  zmq gap-ipc lat ipc:///tmp/amsg-zmq-raw.ipc 64 5000 dealerrouter  # (zmq_bench has no gap: back-to-back)
  zmq lat-tcp lat tcp://127.0.0.1:5599 64 "$N" dealerrouter
  ucx lat-tcp-event "$TCP" --event
  amsg lat-tcp-event "$TCP" --scenario pingpong --pingpong-messages "$N"
  ucx lat-tcp-poll "$TCP" --poll
  amsg lat-tcp-poll "$TCP" --scenario pingpong --pingpong-messages "$N" --busy-poll
  amsg thr-shm-event "" --scenario thr -n 64 --messages 1000000
  amsg thr-shm-poll "" --scenario thr -n 64 --messages 1000000 --busy-poll
  amsg reqresp-shm-event "" --scenario reqresp --messages 1000000
  amsg reqresp-shm-poll "" --scenario reqresp --messages 1000000 --busy-poll
done

python3 bench/summarize_ucx.py "$RAW"
