#!/usr/bin/env bash
# `make bench`: TokenGate's proxy against the mock upstream directly and behind nginx, at a fixed
# 1,000 requests/s (open loop, tests/Gateway.Benchmarks) and at maximum rate (wrk), streaming and
# non-streaming. Prints the comparison table and writes docs/benchmarks.md.
#
# Everything runs on 127.0.0.1 with its own state (own Redis key prefix, own PostgreSQL database
# tokengate_bench, own nginx config under .data/bench/), so it never disturbs `make run`; whatever it
# starts is stopped on exit. About 9 minutes on 2 cores. Knobs (environment):
#   BENCH_RATE=1000 BENCH_FIXED_SECONDS=10 BENCH_FIXED_ROUNDS=3 BENCH_WARMUP_SECONDS=3 BENCH_MAX_SECONDS=10
#   BENCH_WRK_THREADS=2 BENCH_WRK_CONNECTIONS=64 BENCH_DOC=docs/benchmarks.md (empty: do not write)
#   BENCH_NOTE='text for the doc'  BENCH_SERVE=1 (start everything, measure nothing, keep serving)
#   BENCH_DATABASE=tokengate_bench (PostgreSQL database created and dropped; change it when runs may overlap)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

rate="${BENCH_RATE:-1000}"
fixed_seconds="${BENCH_FIXED_SECONDS:-10}"
fixed_rounds="${BENCH_FIXED_ROUNDS:-3}"
warmup_seconds="${BENCH_WARMUP_SECONDS:-3}"
max_seconds="${BENCH_MAX_SECONDS:-10}"
wrk_threads="${BENCH_WRK_THREADS:-2}"
wrk_connections="${BENCH_WRK_CONNECTIONS:-64}"
doc="${BENCH_DOC-docs/benchmarks.md}"
pg_port=55432
redis_port=56379
database="${BENCH_DATABASE:-tokengate_bench}"
prefix="tgbench-$$-$(date +%s):"

bench="$root/.data/bench"
logs="$bench/logs"
log() { printf '[bench] %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------------------------
need_package() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then log "$1 is missing; install it with: sudo apt-get install $2"; exit 1; fi
  log "installing $2 with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need_package wrk wrk
need_package nginx nginx
for c in curl psql redis-cli dotnet; do command -v "$c" >/dev/null || { log "$c is required"; exit 1; }; done

# --- build ------------------------------------------------------------------------------------
log "building Release"
for p in tests/Gateway.MockUpstream proxy/Gateway.Proxy operator/Gateway.Operator tests/Gateway.Benchmarks; do
  dotnet build "$p" -c Release -nologo -v q -clp:NoSummary >/dev/null || { log "build of $p failed"; dotnet build "$p" -c Release -nologo -v q -clp:NoSummary | tail -20 >&2; exit 1; }
done
bin() { echo "$root/$1/bin/Release/net10.0/$(basename "$1").dll"; }
tool() { dotnet "$(bin tests/Gateway.Benchmarks)" "$@"; }

# --- state and clean-up -----------------------------------------------------------------------
rm -rf "$bench"
mkdir -p "$logs" "$bench/samples" "$bench/state" "$bench/nginx/tmp"
results="$bench/results.tsv"
: >"$results"

pids=()
db_created=0
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$db_created" = 1 ]; then
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qAtc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || log "could not drop database $database"
  fi
  redis-cli -h 127.0.0.1 -p "$redis_port" --scan --pattern "${prefix}*" 2>/dev/null | xargs -r -n 500 redis-cli -h 127.0.0.1 -p "$redis_port" del >/dev/null 2>&1 || true
  [ "$status" = 0 ] || log "failed (exit $status); logs in $logs/"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # a TCP port no socket uses, below the ephemeral range (racy but good enough locally)
  local p low
  low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 20100 ] || low=61000
  while :; do
    p=$((20000 + RANDOM % (low - 20000)))
    [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ] && { echo "$p"; return; }
  done
}
taken=" "
pick_port() { local p; p=$(free_port); while [[ "$taken" == *" $p "* ]]; do p=$(free_port); done; echo "$p"; }
mock_port=$(pick_port); taken+="$mock_port "
nginx_port=$(pick_port); taken+="$nginx_port "
forwarder_port=$(pick_port); taken+="$forwarder_port "
operator_port=$(pick_port); taken+="$operator_port "
proxy_port=$(pick_port); taken+="$proxy_port "
proxy_mgmt_port=$(pick_port)   # the proxy's management listener: /metrics (never on the public port)
taken+="$proxy_mgmt_port "
proxy_leases_port=$(pick_port); taken+="$proxy_leases_port "   # the same proxy with quota leases (Hot path v2)
proxy_leases_mgmt_port=$(pick_port); taken+="$proxy_leases_mgmt_port "
portkey_port=$(pick_port)   # Portkey's open-source AI gateway (npm @portkey-ai/gateway), the gateway a user might pick instead

export PGOPTIONS='-c client_min_messages=warning'
psql -h 127.0.0.1 -p "$pg_port" -U postgres -qAtc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U postgres -qAtc "CREATE DATABASE $database" >/dev/null
db_created=1

head -c 32 /dev/urandom | base64 | tr -d '\n' >"$bench/pepper"
chmod 600 "$bench/pepper"
# The upstream credential key ring shared by operator and proxy (see config/local/run.sh).
mkdir -p "$bench/credential-keys"
head -c 32 /dev/urandom | base64 | tr -d '\n' >"$bench/credential-keys/bench"
chmod 600 "$bench/credential-keys/bench"

# A user who can never run out: every check runs, none rejects.
cat >"$bench/samples/bench.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: bench-upstream-credentials
  namespace: default
type: Opaque
stringData:
  apiKey: mock-upstream-key
---
apiVersion: tokengate.io/v1alpha1
kind: UpstreamAccount
metadata:
  name: bench-mock
  namespace: default
spec:
  provider: openai-compatible
  baseUrl: http://127.0.0.1:$mock_port/v1
  credentials:
    apiKeySecretRef:
      name: bench-upstream-credentials
      key: apiKey
  models:
    - name: gpt-4o-mini
  priority: 0
  weight: 1
---
apiVersion: tokengate.io/v1alpha1
kind: UserQuota
metadata:
  name: bench
  namespace: default
spec:
  user:
    name: bench
    email: bench@example.com
  budget:
    amount: 100000000
    period: monthly
    timezone: UTC
  grants:
    - id: bench-credit
      amount: 100000000
      reason: Benchmark
  limits:
    requestsPerMinute: 1000000000
    requestsPerDay: 2000000000
    tokensPerMinute: 1000000000000
    tokensPerDay: 1000000000000
    maxConcurrent: 100000
  allowedModels: ["gpt-4o-*"]
---
apiVersion: tokengate.io/v1alpha1
kind: ApiKey
metadata:
  name: bench
  namespace: default
spec:
  owner: bench
  description: Benchmark key
  allowedModels: ["gpt-4o-mini"]
  limits:
    requestsPerMinute: 1000000000
    tokensPerMinute: 1000000000000
    maxConcurrent: 100000
    tokenLimit: 1000000000000
    spendLimit: 100000000
YAML

# --- start everything -------------------------------------------------------------------------
export DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production
export Logging__LogLevel__Default=Warning Logging__LogLevel__Microsoft=Warning
export DOTNET_gcServer=1 DOTNET_TieredPGO=1

declare -A pid_of
start() { # name command... (env execs the program, so $! is the program itself)
  local name=$1; shift
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
}
wait_http() { # url name
  local i
  for i in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { log "$2 exited; see $logs/$2.log"; tail -20 "$logs/$2.log" >&2; exit 1; }; done
    sleep 0.2
  done
  log "$2 did not become ready at $1; see $logs/$2.log"; exit 1
}

start mock env Mock__Record=false dotnet "$(bin tests/Gateway.MockUpstream)" --urls "http://127.0.0.1:$mock_port"

ngx="$bench/nginx"
cat >"$ngx/nginx.conf" <<NGINX
# Written by config/local/bench.sh; a plain reverse proxy with upstream keepalive, the fair floor.
worker_processes auto;
daemon off;
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $ngx/tmp/client_body;
  proxy_temp_path $ngx/tmp/proxy;
  fastcgi_temp_path $ngx/tmp/fastcgi;
  uwsgi_temp_path $ngx/tmp/uwsgi;
  scgi_temp_path $ngx/tmp/scgi;
  keepalive_requests 1000000;
  upstream mock {
    server 127.0.0.1:$mock_port;
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    client_body_buffer_size 64k;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
NGINX
start nginx nginx -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log"

# The .NET floor: bare Kestrel + SocketsHttpHandler forwarding, no TokenGate logic.
start forwarder dotnet "$(bin tests/Gateway.Benchmarks)" forward --urls "http://127.0.0.1:$forwarder_port" --upstream "http://127.0.0.1:$mock_port"

# Portkey's gateway (Node.js), installed once into .tools/portkey; its row is left out if npm cannot fetch it.
portkey_version="${BENCH_PORTKEY_VERSION:-1.15.2}"
portkey_js="$root/.tools/portkey/node_modules/@portkey-ai/gateway/build/start-server.js"
if [ ! -f "$portkey_js" ] || ! grep -q "\"version\": \"$portkey_version\"" "$root/.tools/portkey/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null; then
  log "installing Portkey's gateway $portkey_version into .tools/portkey"
  (mkdir -p "$root/.tools/portkey" && cd "$root/.tools/portkey" && npm install --silent --no-audit --no-fund "@portkey-ai/gateway@$portkey_version") \
    >"$logs/portkey-install.log" 2>&1 || log "could not install Portkey's gateway (see $logs/portkey-install.log); its rows are left out"
fi
have_portkey=0
if [ -f "$portkey_js" ] && command -v node >/dev/null 2>&1; then
  start portkey env NODE_ENV=production node "$portkey_js" --port="$portkey_port" --headless
  have_portkey=1
fi
portkey_host="http://127.0.0.1:$mock_port/v1"

start_operator() {
  start operator env \
    ConnectionStrings__Postgres="Host=127.0.0.1;Port=$pg_port;Username=postgres;Database=$database" \
    ConnectionStrings__Redis="127.0.0.1:$redis_port" \
    TokenGate__Redis__KeyPrefix="$prefix" TokenGate__PepperFile="$bench/pepper" \
    TokenGate__Credentials__KeysDirectory="$bench/credential-keys" \
    TokenGate__PricesDirectory="$root/config/prices" \
    dotnet "$(bin operator/Gateway.Operator)" --source "dir:$bench/samples" --state-dir "$bench/state" --urls "http://127.0.0.1:$operator_port"
}
start_operator

start_proxy() { # name port management_port leases
  start "$1" env \
    ConnectionStrings__Redis="127.0.0.1:$redis_port" \
    TokenGate__Redis__KeyPrefix="$prefix" TokenGate__PepperFile="$bench/pepper" \
    TokenGate__Credentials__KeysDirectory="$bench/credential-keys" \
    TokenGate__PricesDirectory="$root/config/prices" \
    TokenGate__Management__Urls="http://127.0.0.1:$3" \
    TokenGate__Leases__Enabled="$4" \
    dotnet "$(bin proxy/Gateway.Proxy)" --urls "http://127.0.0.1:$2"
}
# The proxy in exact mode (leases off), and the same proxy admitting through quota leases (TokenGate:Leases:Enabled,
# the default).
start_proxy proxy "$proxy_port" "$proxy_mgmt_port" false
start_proxy proxy_leases "$proxy_leases_port" "$proxy_leases_mgmt_port" true

wait_http "http://127.0.0.1:$mock_port/healthz" mock
wait_http "http://127.0.0.1:$nginx_port/healthz" nginx
wait_http "http://127.0.0.1:$forwarder_port/healthz" forwarder
# On a machine this busy the operator's first PostgreSQL connection can time out at start and end the
# process; one more try is cheaper than failing the whole run.
for attempt in 1 2 3; do
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$operator_port/readyz" 2>/dev/null && break 2
    kill -0 "${pid_of[operator]}" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "${pid_of[operator]}" 2>/dev/null; then break; fi
  [ "$attempt" = 3 ] && { log "the operator exited 3 times; see $logs/operator.log"; tail -5 "$logs/operator.log" >&2; exit 1; }
  log "the operator exited during start-up (attempt $attempt); starting it again"
  cp "$logs/operator.log" "$logs/operator.$attempt.log"
  alive=()
  for p in "${pids[@]}"; do [ "$p" = "${pid_of[operator]}" ] || alive+=("$p"); done
  pids=("${alive[@]}")
  start_operator
done
wait_http "http://127.0.0.1:$operator_port/readyz" operator
wait_http "http://127.0.0.1:$proxy_port/readyz" proxy
wait_http "http://127.0.0.1:$proxy_leases_port/readyz" proxy_leases

keyfile="$bench/state/secrets/default/bench-apikey.yaml"
for _ in $(seq 1 150); do [ -s "$keyfile" ] && break; sleep 0.2; done
[ -s "$keyfile" ] || { log "the operator did not issue the bench key; see $logs/operator.log"; exit 1; }
proxy_key=$(sed -n "s/^  OPENAI_API_KEY: //p" "$keyfile" | head -1 | base64 -d)
export BENCH_PROXY_KEY="$proxy_key" BENCH_MOCK_KEY=mock-upstream-key

body_json="$bench/chat.json"
body_stream="$bench/chat-stream.json"
printf '%s' '{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"Summarise the benefits of an API gateway for language models in one sentence."}]}' >"$body_json"
printf '%s' '{"model":"gpt-4o-mini","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Summarise the benefits of an API gateway for language models in one sentence."}]}' >"$body_stream"

url() { # target
  case $1 in
    direct) echo "http://127.0.0.1:$mock_port/v1/chat/completions" ;;
    nginx) echo "http://127.0.0.1:$nginx_port/v1/chat/completions" ;;
    dotnet) echo "http://127.0.0.1:$forwarder_port/v1/chat/completions" ;;
    proxy|proxy-ledger-paused) echo "http://127.0.0.1:$proxy_port/v1/chat/completions" ;;
    proxy-leases) echo "http://127.0.0.1:$proxy_leases_port/v1/chat/completions" ;;
    portkey) echo "http://127.0.0.1:$portkey_port/v1/chat/completions" ;;
  esac
}
key_env() { case $1 in proxy*) echo BENCH_PROXY_KEY ;; *) echo BENCH_MOCK_KEY ;; esac; }

# Every target must answer 200 before anything is measured; the proxy may need a moment for the
# projection of the freshly issued key to reach Redis.
smoke_targets="direct nginx dotnet proxy proxy-leases"
if [ "$have_portkey" = 1 ]; then smoke_targets+=" portkey"; fi
for target in $smoke_targets; do
  ok=0
  for _ in $(seq 1 100); do
    k=$(key_env "$target")
    code=$(curl -s -o "$bench/smoke-$target.json" -w '%{http_code}' "$(url "$target")" \
      -H "Authorization: Bearer ${!k}" -H 'Content-Type: application/json' -H 'x-portkey-provider: openai' \
      -H "x-portkey-custom-host: $portkey_host" --data-binary "@$body_json" || true)
    [ "$code" = 200 ] && { ok=1; break; }
    sleep 0.2
  done
  [ "$ok" = 1 ] || { log "$target answered $code instead of 200 (see $bench/smoke-$target.json and $logs/)"; exit 1; }
done
log "mock :$mock_port, nginx :$nginx_port, bare .NET forwarder :$forwarder_port, proxy :$proxy_port (exact), proxy with leases :$proxy_leases_port, operator :$operator_port — all answer 200"

cat >"$bench/wrk.lua" <<'LUA'
-- POST body and credential from the environment (never on the command line); one RESULT line at the end.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv(os.getenv("BENCH_KEY_ENV"))
-- Portkey's gateway takes the provider and the upstream's address from headers.
if os.getenv("BENCH_PORTKEY_HOST") then
  wrk.headers["x-portkey-provider"] = "openai"
  wrk.headers["x-portkey-custom-host"] = os.getenv("BENCH_PORTKEY_HOST")
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT\t%s\t%.1f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%.3f\n", os.getenv("BENCH_LABEL"),
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000, errors, summary.requests, latency.max / 1000))
end
LUA

# BENCH_SERVE=1: keep everything running for manual experiments (ports and key in .data/bench/env).
if [ "${BENCH_SERVE:-}" = 1 ]; then
  printf 'mock_port=%s\nnginx_port=%s\nforwarder_port=%s\nproxy_port=%s\nproxy_mgmt_port=%s\noperator_port=%s\nprefix=%s\nBENCH_PROXY_KEY=%s\n' \
    "$mock_port" "$nginx_port" "$forwarder_port" "$proxy_port" "$proxy_mgmt_port" "$operator_port" "$prefix" "$proxy_key" >"$bench/env"
  chmod 600 "$bench/env"
  log "serving until interrupted; ports and key in $bench/env"
  wait "${pids[@]}" || true  # every child, so one restarted by hand does not end the others
  exit 0
fi

# --- measurements -----------------------------------------------------------------------------
metrics() { curl -fsS "http://127.0.0.1:$proxy_mgmt_port/metrics"; }
# Sum of every sample of a metric family member (e.g. all label sets of a counter).
metric_sum() { # text name
  awk -v n="$2" '{ split($1, a, "{"); if (a[1] == n) s += $2 } END { printf "%.0f", s }' <<<"$1"
}
metric_sum_f() { # text name (floating point)
  awk -v n="$2" '{ split($1, a, "{"); if (a[1] == n) s += $2 } END { printf "%.9f", s }' <<<"$1"
}

# The ledger writer persists usage events in the background; a backlog left by an earlier run would
# compete for the CPU with the next one, so wait (bounded) until it has drained.
settle_ledger() {
  local i len
  for i in $(seq 1 150); do
    len=$(redis-cli -h 127.0.0.1 -p "$redis_port" XLEN "${prefix}usage" 2>/dev/null || echo 0)
    [ "${len:-0}" -le 100 ] && return 0
    sleep 0.2
  done
  log "the ledger writer still has $len usage events to persist; measuring anyway"
}

fixed() { # mode target
  local mode=$1 target=$2 body
  settle_ledger
  body=$([ "$mode" = stream ] && echo "$body_stream" || echo "$body_json")
  local extra=()
  [ "$target" = portkey ] && extra=(--header "x-portkey-provider: openai" --header "x-portkey-custom-host: $portkey_host")
  tool load --url "$(url "$target")" --rate "$rate" --duration "$fixed_seconds" --warmup "$warmup_seconds" \
    --body-file "$body" --bearer-env "$(key_env "$target")" --connections 64 --timeout 10 "${extra[@]}" \
    --label "fixed/$mode/$target" >>"$results" 2>>"$logs/load.log"
  tail -1 "$logs/load.log" >&2
}


# CPU time (clock ticks) used so far by each part: proxy mock nginx forwarder operator redis postgres (wrk apart).
# Redis and PostgreSQL are shared with anything else on the machine, so theirs is an upper bound.
ticks() { # pids...
  local p t=0
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo "$t"
}
nginx_pids() { echo "${pid_of[nginx]} $(pgrep -P "${pid_of[nginx]}" | tr '\n' ' ')"; }
redis_pids() { pgrep -x redis-server | tr '\n' ' '; }
postgres_pids() { pgrep -u postgres -x postgres | tr '\n' ' '; }
cpu_snapshot() { # target (whose proxy process counts as "proxy")
  local proxy_pid=${pid_of[proxy]}
  [ "${1:-}" = proxy-leases ] && proxy_pid=${pid_of[proxy_leases]}
  # For Portkey's row the "proxy" column is its Node.js process.
  [ "${1:-}" = portkey ] && proxy_pid=${pid_of[portkey]}
  # shellcheck disable=SC2046
  echo "$(ticks "$proxy_pid") $(ticks "${pid_of[mock]}") $(ticks $(nginx_pids)) $(ticks "${pid_of[forwarder]}") $(ticks "${pid_of[operator]}") $(ticks $(redis_pids)) $(ticks $(postgres_pids))"
}
clk_tck=$(getconf CLK_TCK)

max_rate() { # mode target
  local mode=$1 target=$2 body
  settle_ledger
  body=$([ "$mode" = stream ] && echo "$body_stream" || echo "$body_json")
  local args=(-t "$wrk_threads" -c "$wrk_connections" --timeout 5s -s "$bench/wrk.lua" "$(url "$target")")
  if [ "$target" = portkey ]; then export BENCH_PORTKEY_HOST="$portkey_host"; else unset BENCH_PORTKEY_HOST; fi
  BENCH_BODY="$body" BENCH_KEY_ENV="$(key_env "$target")" BENCH_LABEL="warmup" \
    wrk -d "${warmup_seconds}s" "${args[@]}" >/dev/null 2>>"$logs/wrk.log"
  local before after wrk_ticks
  before=$(cpu_snapshot "$target")
  wrk_ticks=$( { BENCH_BODY="$body" BENCH_KEY_ENV="$(key_env "$target")" BENCH_LABEL="max/$mode/$target" \
    bash -c 'wrk "$@" >"$0"; awk "{ print \$14 + \$15 + \$16 + \$17 }" /proc/$$/stat' "$bench/wrk-$mode-$target.txt" \
    -d "${max_seconds}s" "${args[@]}"; } 2>>"$logs/wrk.log")
  after=$(cpu_snapshot "$target")
  grep '^RESULT' "$bench/wrk-$mode-$target.txt" >>"$results"
  local n
  n=$(grep '^RESULT' "$bench/wrk-$mode-$target.txt" | cut -f8)
  if [ -n "$n" ] && [ "$n" -gt 0 ]; then
    printf 'CPU\t%s\t%s\t%s\n' "$mode" "$target" "$(awk -v b="$before" -v a="$after" -v w="$wrk_ticks" -v n="$n" -v hz="$clk_tck" 'BEGIN {
      split(b, x, " "); split(a, y, " "); out = ""
      for (i = 1; i <= 7; i++) out = out sprintf("%.0f\t", (y[i] - x[i]) * 1e6 / hz / n)
      printf "%s%.0f", out, w * 1e6 / hz / n }')" >>"$results"
  fi
  grep '^RESULT' "$bench/wrk-$mode-$target.txt" | awk -F'\t' '{ printf "  %s: %.0f req/s, p50 %s ms, p99 %s ms, errors %s/%s\n", $2, $3, $4, $5, $7, $8 }' >&2
}

{
  printf 'INFO\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'INFO\tcpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  printf 'INFO\tnproc\t%s\n' "$(nproc)"
  printf 'INFO\tmemory\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  printf 'INFO\tkernel\t%s\n' "$(uname -sr)"
  printf 'INFO\tdotnet\t%s\n' "$(dotnet --version) SDK, runtime $(dotnet --list-runtimes | awk '/Microsoft.NETCore.App/ { v = $2 } END { print v }')"
  printf 'INFO\tnginx\t%s\n' "$(nginx -v 2>&1 | sed 's/^nginx version: nginx\///')"
  if [ "$have_portkey" = 1 ]; then printf 'INFO\tportkey\t%s on Node.js %s\n' "$portkey_version" "$(node --version)"; fi
  printf 'INFO\twrk_version\t%s\n' "$(wrk -v 2>&1 | head -1 | awk '{ print $2 }')"
  printf 'INFO\tload_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'INFO\tfixed_rate\t%s\n' "$rate"
  printf 'INFO\tfixed_duration\t%s\n' "$fixed_seconds"
  printf 'INFO\tfixed_warmup\t%s\n' "$warmup_seconds"
  printf 'INFO\tmax_warmup\t%s\n' "$warmup_seconds"
  printf 'INFO\tmax_tool\t%s\n' "wrk -t$wrk_threads -c$wrk_connections -d${max_seconds}s"
} >>"$results"

# The .NET processes start cold (tiered JIT, connection pools, the ledger writer's first batches): one
# short burst each through the forwarder and the proxy, before any figure is taken, so that the first
# measured runs do not pay for it.
log "warming up the .NET targets (${warmup_seconds}s per target and mode)"
for mode in json stream; do
  warm="dotnet proxy proxy-leases"
  if [ "$have_portkey" = 1 ]; then warm+=" portkey"; fi
  for target in $warm; do
    if [ "$target" = portkey ]; then export BENCH_PORTKEY_HOST="$portkey_host"; else unset BENCH_PORTKEY_HOST; fi
    BENCH_BODY=$([ "$mode" = stream ] && echo "$body_stream" || echo "$body_json") BENCH_KEY_ENV="$(key_env "$target")" BENCH_LABEL=warmup \
      wrk -t "$wrk_threads" -c "$wrk_connections" -d "${warmup_seconds}s" --timeout 5s -s "$bench/wrk.lua" "$(url "$target")" >/dev/null 2>>"$logs/wrk.log"
  done
done

for mode in json stream; do
 for round in $(seq 1 "$fixed_rounds"); do
  log "fixed $rate req/s, $mode, round $round of $fixed_rounds (${warmup_seconds}s warm-up + ${fixed_seconds}s each)"
  fixed "$mode" direct
  fixed "$mode" nginx
  fwd_before=$(curl -fsS "http://127.0.0.1:$forwarder_port/_stats")
  fixed "$mode" dotnet
  fwd_after=$(curl -fsS "http://127.0.0.1:$forwarder_port/_stats")
  awk -v m="$mode" -v b="$fwd_before" -v a="$fwd_after" 'BEGIN { split(b, x, " "); split(a, y, " "); n = y[2] - x[2]
    if (n > 0) printf "ALLOC_FORWARDER\t%s\t%.0f\t%d\n", m, (y[1] - x[1]) / n, n }' >>"$results"
  before=$(metrics)
  fixed "$mode" proxy
  after=$(metrics)
  bytes=$(( $(metric_sum "$after" dotnet_gc_allocated_bytes_total) - $(metric_sum "$before" dotnet_gc_allocated_bytes_total) ))
  requests=$(( $(metric_sum "$after" tokengate_proxy_requests_total) - $(metric_sum "$before" tokengate_proxy_requests_total) ))
  if [ "$requests" -gt 0 ]; then
    printf 'ALLOC\t%s\t%s\t%s\n' "$mode" "$(awk -v b="$bytes" -v r="$requests" 'BEGIN { printf "%.0f", b / r }')" "$requests" >>"$results"
  fi
  osum=$(awk -v a="$(metric_sum_f "$after" tokengate_proxy_overhead_seconds_sum)" -v b="$(metric_sum_f "$before" tokengate_proxy_overhead_seconds_sum)" 'BEGIN { print a - b }')
  ocount=$(( $(metric_sum "$after" tokengate_proxy_overhead_seconds_count) - $(metric_sum "$before" tokengate_proxy_overhead_seconds_count) ))
  if [ "$ocount" -gt 0 ]; then
    printf 'OVERHEAD\t%s\t%s\n' "$mode" "$(awk -v s="$osum" -v c="$ocount" 'BEGIN { printf "%.4f", s * 1000 / c }')" >>"$results"
  fi
  # Attribution only (the goal is judged on the run above): the same proxy run with the operator
  # stopped (SIGSTOP), so its ledger writer and PostgreSQL take no CPU from the request path. On a
  # cluster they run in other pods, usually on other nodes; on this 2-core box they share the cores.
  # The usage events queue up in the Redis stream meanwhile and are persisted after SIGCONT.
  settle_ledger
  kill -STOP "${pid_of[operator]}"
  fixed "$mode" proxy-ledger-paused || true
  kill -CONT "${pid_of[operator]}"
  fixed "$mode" proxy-leases
  if [ "$have_portkey" = 1 ]; then fixed "$mode" portkey; fi
 done
done

for mode in json stream; do
  log "maximum rate, $mode (wrk -t$wrk_threads -c$wrk_connections, ${warmup_seconds}s warm-up + ${max_seconds}s each)"
  max_rate "$mode" direct
  max_rate "$mode" nginx
  max_rate "$mode" dotnet
  max_rate "$mode" proxy
  max_rate "$mode" proxy-leases
  if [ "$have_portkey" = 1 ]; then max_rate "$mode" portkey; fi
done
unset BENCH_PORTKEY_HOST

printf 'INFO\tload_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"
if [ -n "${BENCH_NOTE:-}" ]; then printf 'INFO\tnote\t%s\n' "$BENCH_NOTE" >>"$results"; fi

echo
if [ -n "$doc" ]; then tool report --results "$results" --out "$doc"; else tool report --results "$results"; fi
