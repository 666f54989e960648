#!/usr/bin/env bash
# `make bench-operator`: the operator at scale (issue #11, item 6; docs/benchmarks.md, "Operator at scale").
# 10,000 ApiKeys, 2,000 UserQuotas and 50 UpstreamAccounts on the loopback fake API server, and on a real
# kube-apiserver too when KUBEBUILDER_ASSETS names a folder holding one (the envtest convention). The operator runs
# as its own process (Release build) against a throw-away PostgreSQL database and its own Redis prefix; the bench
# prints: start → every object Ready, the operator's CPU seconds and peak working set, its CPU, reconciles and API
# requests over an idle window with nothing changing, and a rotation storm (1,000 rotate annotations at once).
# Then the proxy half: the policy cache's memory and the first requests' latency with 100,000 keys in the projection.
#
# Knobs (environment): BENCH_OPERATOR_KEYS=10000 BENCH_OPERATOR_USERS=2000 BENCH_OPERATOR_UPSTREAMS=50
#   BENCH_OPERATOR_ROTATE=1000 BENCH_OPERATOR_IDLE=60 BENCH_POLICY_KEYS=100000
#   BENCH_OPERATOR_CLUSTERS="fake real" (real is skipped, with the reason, when KUBEBUILDER_ASSETS is not usable)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

dotnet build operator/Gateway.Operator -c Release -nologo -v q -clp:NoSummary
dotnet build tests/Gateway.Benchmarks -c Release -nologo -v q -clp:NoSummary
bench=tests/Gateway.Benchmarks/bin/Release/net10.0/Gateway.Benchmarks.dll
operator_dll="$root/operator/Gateway.Operator/bin/Release/net10.0/Gateway.Operator.dll"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
for cluster in ${BENCH_OPERATOR_CLUSTERS:-fake real}; do
  if [[ "$cluster" == real && ( -z "${KUBEBUILDER_ASSETS:-}" || ! -x "${KUBEBUILDER_ASSETS}/kube-apiserver" ) ]]; then
    echo "real API server: skipped (KUBEBUILDER_ASSETS does not name a folder with kube-apiserver)"
    continue
  fi
  echo
  dotnet "$bench" operator-scale --cluster "$cluster" --operator-dll "$operator_dll" \
    --keys "${BENCH_OPERATOR_KEYS:-10000}" --users "${BENCH_OPERATOR_USERS:-2000}" --upstreams "${BENCH_OPERATOR_UPSTREAMS:-50}" \
    --rotate "${BENCH_OPERATOR_ROTATE:-1000}" --idle "${BENCH_OPERATOR_IDLE:-60}"
done
echo
dotnet "$bench" policy-cache --keys "${BENCH_POLICY_KEYS:-100000}"
