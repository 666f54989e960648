#!/usr/bin/env bash
# Builds the solution and runs every test project against the local PostgreSQL and Redis.
# Prints one closing line "tests: N passed, N failed, N skipped"; exits non-zero on any failure.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# Test hosts start hundreds of web hosts; each would hold inotify instances for config reload and static
# files, and the default per-user limit (128) runs out when the test assemblies run in parallel.
export DOTNET_hostBuilder__reloadConfigOnChange=false
export DOTNET_USE_POLLING_FILE_WATCHER=true
results="$root/.data/test-results"
rm -rf "$results"; mkdir -p "$results"

dotnet build Gateway.sln -c "${CONFIG:-Debug}" -nologo -clp:NoSummary || { echo "tests: 0 passed, 1 failed (build failed)"; exit 1; }

status=0
dotnet test Gateway.sln -c "${CONFIG:-Debug}" --no-build -nologo \
  --logger "trx" --results-directory "$results" \
  -- RunConfiguration.TestSessionTimeout=2400000 || status=$?

passed=0; failed=0; skipped=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  c=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$c"); f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$c")
  # Skipped tests (e.g. the real-API-server variants without KUBEBUILDER_ASSETS) are in total but not executed.
  t=$(sed -n 's/.* total="\([0-9]*\)".*/\1/p' <<<"$c"); e=$(sed -n 's/.* executed="\([0-9]*\)".*/\1/p' <<<"$c")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${t:-0} - ${e:-0}))
done
if [ "$passed" -eq 0 ]; then status=1; fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
