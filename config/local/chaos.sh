#!/usr/bin/env bash
# The fault runs (docs/reliability.md, "Fault runs"): the tests of tests/Gateway.EndToEnd/Faults run TG_CHAOS_SCALE
# times longer than their short form in make test (default 10: ten times the requests before, during and after each
# fault, ten proxy kills), each ending with the conservation checker. Figures per run go to .data/chaos/report.txt
# and are printed at the end.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export DOTNET_hostBuilder__reloadConfigOnChange=false
export TG_CHAOS_SCALE="${TG_CHAOS_SCALE:-10}"
mkdir -p .data/chaos
export TG_CHAOS_REPORT="$root/.data/chaos/report.txt"
rm -f "$TG_CHAOS_REPORT"
# The proxy kill runs the proxy's own build output as a process: build the solution.
dotnet build Gateway.sln -c "${CONFIG:-Debug}" -nologo -clp:NoSummary -v q || exit 1
status=0
start=$(date +%s)
dotnet test tests/Gateway.EndToEnd -c "${CONFIG:-Debug}" --no-build -nologo \
  --filter "FullyQualifiedName~Gateway.EndToEnd.Faults" -- RunConfiguration.TestSessionTimeout=7200000 || status=$?
[ -f "$TG_CHAOS_REPORT" ] && cat "$TG_CHAOS_REPORT"
echo "chaos: scale $TG_CHAOS_SCALE, $(( $(date +%s) - start )) s: $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit "$status"
