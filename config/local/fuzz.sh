#!/usr/bin/env bash
# The long hostile-client pass (docs/reliability.md): the fuzz test of tests/Gateway.Proxy.Tests run with a fixed seed
# list and many cases per seed. FUZZ_SEED (comma-separated) and FUZZ_CASES (per seed) override; figures go to
# .data/fuzz/report.txt and are printed at the end.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export DOTNET_hostBuilder__reloadConfigOnChange=false
export FUZZ_SEED="${FUZZ_SEED:-1,2,3,4}"
export FUZZ_CASES="${FUZZ_CASES:-50000}"
mkdir -p .data/fuzz
export FUZZ_REPORT="$root/.data/fuzz/report.txt"
rm -f "$FUZZ_REPORT"
dotnet build tests/Gateway.Proxy.Tests -c "${CONFIG:-Debug}" -nologo -clp:NoSummary -v q || exit 1
status=0
dotnet test tests/Gateway.Proxy.Tests -c "${CONFIG:-Debug}" --no-build -nologo \
  --filter "FullyQualifiedName~Gateway.Proxy.Tests.Fuzz.FuzzTests" \
  -- RunConfiguration.TestSessionTimeout=7200000 || status=$?
[ -f "$FUZZ_REPORT" ] && cat "$FUZZ_REPORT"
echo "fuzz: seeds $FUZZ_SEED, $FUZZ_CASES cases per seed: $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit "$status"
