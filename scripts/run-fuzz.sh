#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz preset: clang 14 with ASan and UBSan, -O1) and
# runs each for SECONDS (default 10) from its seed corpus in fuzz/corpus/<target>.
# --preset asan uses the asan preset's build instead (-O0, fewer runs per second;
# CI's short run takes it so, to spare a build of the whole library).
# New inputs go to a temporary directory (the corpus in the repo stays as it is);
# a crash or a violated property stops the target, leaves the input in
# build/<preset>/crashes/ and makes this script fail.
#   scripts/run-fuzz.sh [--preset fuzz|asan] [SECONDS] [TARGET...]
#   targets: frame batch hello notification session
set -euo pipefail
cd "$(dirname "$0")/.."
preset=fuzz
if [ "${1:-}" = --preset ]; then
  preset="${2:?--preset needs a name: fuzz or asan}"
  shift 2
fi
case "$preset" in
  fuzz | asan) ;;
  *) echo "run-fuzz.sh: --preset $preset: only fuzz and asan build the fuzzers" >&2; exit 2 ;;
esac
seconds="${1:-10}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame batch hello notification session)
scripts/install-deps.sh
cmake --preset "$preset" >/dev/null
# Only the fuzzers and what they link (not the cohort, etcd or metrics libraries).
cmake --build --preset "$preset" --target "${targets[@]/#/amsg_fuzz_}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "build/$preset/crashes"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log="$work/$t.log"
  rc=0
  "build/$preset/fuzz/amsg_fuzz_$t" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="build/$preset/crashes/$t-" "$work/$t" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
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
