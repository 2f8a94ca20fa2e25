#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz preset: clang 14 with ASan and UBSan) and
# runs each for SECONDS (default 10) from its seed corpus in fuzz/corpus/<target>.
# New inputs go to a temporary directory (the corpus in the repo stays as it is);
# a crash or a violated property stops the target, leaves the input in
# build/fuzz/crashes/ and makes this script fail.
#   scripts/run-fuzz.sh [SECONDS] [TARGET...]    targets: frame batch hello notification session
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame batch hello notification session)
scripts/install-deps.sh
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p build/fuzz/crashes
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log="$work/$t.log"
  rc=0
  build/fuzz/fuzz/amsg_fuzz_"$t" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="build/fuzz/crashes/$t-" "$work/$t" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rss=$(grep -m1 -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $rc) after $runs runs:"
    grep -E "ERROR|SUMMARY|property violated|Test unit written" "$log" | head -20 || tail -30 "$log"
    status=1
  else
    echo "fuzz: $t ok: $runs runs in ${seconds} s, peak RSS $rss MB"
  fi
done
exit "$status"
