#!/usr/bin/env bash
# `make run`: everything on one machine, no cluster. Expects `make build` and `make services` done
# (the Makefile does both). Ctrl-C or SIGTERM stops every child.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
config="${CONFIG:-Debug}"
data="$root/.data"
logs="$data/logs"
mkdir -p "$logs"

# The key pepper is a secret: generated once per machine, kept out of git under .data/.
if [ ! -s "$data/pepper" ]; then
  head -c 32 /dev/urandom | base64 | tr -d '\n' > "$data/pepper"
  chmod 600 "$data/pepper"
fi
# The key that encrypts upstream credentials in Redis, shared by the operator and the proxy: a folder with one
# file per key id (as the chart's Secret is mounted), generated once per machine. To rotate, add a second file,
# write its id into "active", restart; remove the old file once the operator has rewritten the projection.
if [ -z "$(ls -A "$data/credential-keys" 2>/dev/null)" ]; then
  mkdir -p "$data/credential-keys"
  chmod 700 "$data/credential-keys"
  head -c 32 /dev/urandom | base64 | tr -d '\n' > "$data/credential-keys/local-1"
  chmod 600 "$data/credential-keys/local-1"
fi

export ConnectionStrings__Postgres="Host=127.0.0.1;Port=55432;Username=postgres;Database=tokengate"
export ConnectionStrings__Redis="127.0.0.1:56379"
export TokenGate__PepperFile="$data/pepper"
export TokenGate__Credentials__KeysDirectory="$data/credential-keys"
export TokenGate__PricesDirectory="$root/config/prices"
export TokenGate__PublicBaseUrl="http://127.0.0.1:8080"
export TokenGate__PortalBaseUrl="http://127.0.0.1:8081"
export DOTNET_ENVIRONMENT=Development ASPNETCORE_ENVIRONMENT=Development

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping…"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped (PostgreSQL and Redis keep running; make services-stop stops them)"
}
trap cleanup INT TERM EXIT

start() { # name dll args...
  local name=$1 dll=$2; shift 2
  dotnet "$dll" "$@" >"$logs/$name.log" 2>&1 &
  pids+=($!)
}

wait_http() { # url name
  local i
  for i in $(seq 1 900); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "$2 exited; see $logs/$2.log" >&2; tail -20 "$logs/$2.log" >&2; exit 1; }; done
    sleep 0.2
  done
  echo "$2 did not become ready at $1; see $logs/$2.log" >&2; exit 1
}

bin() { echo "$root/$1/bin/$config/net10.0/$(basename "$1").dll"; }

start mock "$(bin tests/Gateway.MockUpstream)" --urls http://127.0.0.1:8089
start operator "$(bin operator/Gateway.Operator)" --source dir:config/samples --state-dir "$data" --urls http://127.0.0.1:8082
# Public ports for users and workloads; /metrics only on the management ports (:8090, :8091).
start proxy "$(bin proxy/Gateway.Proxy)" --urls http://127.0.0.1:8080 --TokenGate:Management:Urls http://127.0.0.1:8090
start portal "$(bin portal/Gateway.Portal)" --urls http://127.0.0.1:8081 --TokenGate:Management:Urls http://127.0.0.1:8091
wait_http http://127.0.0.1:8089/healthz mock
wait_http http://127.0.0.1:8082/readyz operator
wait_http http://127.0.0.1:8080/readyz proxy
wait_http http://127.0.0.1:8091/readyz portal

secret_value() { # file key
  sed -n "s/^  $2: //p" "$1" | head -1 | base64 -d
}
keyfile="$data/secrets/default/demo-apikey.yaml"
for i in $(seq 1 150); do [ -s "$keyfile" ] && break; sleep 0.2; done
[ -s "$keyfile" ] || { echo "the operator did not issue the demo key; see $logs/operator.log" >&2; exit 1; }
key=$(secret_value "$keyfile" OPENAI_API_KEY)
invitefile="$data/secrets/default/demo-invite.yaml"
invite=$([ -s "$invitefile" ] && secret_value "$invitefile" INVITE_URL || echo "(user already enrolled)")

cat <<INFO

TokenGate is running.
  proxy     http://127.0.0.1:8080   (OpenAI- and Anthropic-compatible; /healthz, /readyz)
            http://127.0.0.1:8090   (management: /metrics, /healthz, /readyz)
  portal    http://127.0.0.1:8081   (management: http://127.0.0.1:8091/metrics)
  operator  http://127.0.0.1:8082   (/metrics, /healthz, /readyz); watching config/samples
  mock      http://127.0.0.1:8089   (the sample upstream)
  logs      $logs/

Demo key (also in $keyfile):
  $key

Try it:
  curl -s http://127.0.0.1:8080/v1/chat/completions \\
    -H "Authorization: Bearer $key" -H "Content-Type: application/json" \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'

Portal invite for the demo user:
  $invite

Edit config/samples/*.yaml and the operator applies the change. Ctrl-C stops everything.
INFO

wait -n "${pids[@]}" || true
echo "a component exited; see $logs/" >&2
