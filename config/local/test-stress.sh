#!/usr/bin/env bash
# Runs the whole test suite N times while stress-ng keeps every core busy, and prints each test that failed
# with how often. A flaky test shows up here long before it turns a CI run red.
#   make test-stress [N=10] [STRESS_CPU_LOAD=100] [STRESS_WORKERS=<nproc>] [TEST_FILTER=...]
# Exits non-zero when any run had a failure. Results: .data/test-stress/run-<i>/*.trx and summary.txt.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# Test hosts start hundreds of web hosts; each would hold inotify instances for config reload and static
# files, and the default per-user limit (128) runs out when the test assemblies run in parallel.
export DOTNET_hostBuilder__reloadConfigOnChange=false
export DOTNET_USE_POLLING_FILE_WATCHER=true
runs="${N:-10}"
load="${STRESS_CPU_LOAD:-100}"
workers="${STRESS_WORKERS:-$(nproc)}"
out="$root/.data/test-stress"
rm -rf "$out"; mkdir -p "$out"

if ! command -v stress-ng >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then echo "stress-ng is missing; install it (apt-get install stress-ng)" >&2; exit 1; fi
  echo "[test-stress] installing stress-ng with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
fi

dotnet build Gateway.sln -c "${CONFIG:-Debug}" -nologo -clp:NoSummary -v q || { echo "test-stress: build failed"; exit 1; }

# Keep every core busy for the whole session; stopped on any exit.
stress-ng --cpu "$workers" --cpu-load "$load" --timeout 0 --quiet &
stress_pid=$!
trap 'kill "$stress_pid" 2>/dev/null; wait "$stress_pid" 2>/dev/null' EXIT
echo "[test-stress] stress-ng: $workers CPU workers at $load% load (pid $stress_pid); $runs runs"

filter_args=()
[ -n "${TEST_FILTER:-}" ] && filter_args=(--filter "$TEST_FILTER")
started=$(date +%s)
failed_runs=0
for i in $(seq 1 "$runs"); do
  dir="$out/run-$i"; mkdir -p "$dir"
  t0=$(date +%s)
  dotnet test Gateway.sln -c "${CONFIG:-Debug}" --no-build -nologo -v q "${filter_args[@]}" \
    --logger trx --results-directory "$dir" -- RunConfiguration.TestSessionTimeout=2400000 >"$dir/console.log" 2>&1
  rc=$?
  p=0; f=0
  for trx in "$dir"/*.trx; do
    [ -f "$trx" ] || continue
    c=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
    p=$((p + $(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$c"))); f=$((f + $(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$c")))
    # One line per failed test: its full name.
    grep -o '<UnitTestResult [^>]*outcome="Failed"[^>]*>' "$trx" | sed -n 's/.*testName="\([^"]*\)".*/\1/p' >>"$out/failures.txt"
  done
  if [ "$rc" -ne 0 ] || [ "$f" -gt 0 ] || [ "$p" -eq 0 ]; then failed_runs=$((failed_runs + 1)); fi
  echo "[test-stress] run $i/$runs: $p passed, $f failed, exit $rc, $(( $(date +%s) - t0 )) s"
done

{
  echo "test-stress: $runs runs under stress-ng ($workers workers at $load%), $failed_runs with failures, $(( $(date +%s) - started )) s"
  if [ -s "$out/failures.txt" ]; then
    echo "failing tests (count name):"
    sort "$out/failures.txt" | uniq -c | sort -rn
  else
    echo "no test failed"
  fi
} | tee "$out/summary.txt"
[ "$failed_runs" -eq 0 ]
