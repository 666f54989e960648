#!/usr/bin/env bash
# Local PostgreSQL 15 (127.0.0.1:55432, database tokengate) and Redis 7 (127.0.0.1:56379) for
# development and tests. Idempotent: "start" on running services is a no-op. Non-interactive.
#   config/local/services.sh start|stop|status
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data="$root/.data"
pg_port=55432
redis_port=56379
pg_bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"

log() { printf '[services] %s\n' "$*" >&2; }

as_postgres() {
  # From /, so a working directory the postgres user cannot enter (e.g. under /root) is no problem.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

ensure_redis_installed() {
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then log "redis-server is missing; install it (apt-get install redis-server)"; exit 1; fi
    log "installing redis-server with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
}

ensure_postgres_user() {
  [ "$(id -u)" = 0 ] || return 0
  if ! id postgres >/dev/null 2>&1; then
    log "creating system user postgres"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

# PostgreSQL refuses to run as root, so its data directory must be reachable by the postgres user.
# .data/postgres is used when it is; otherwise (e.g. a clone under /root) a directory under
# /var/lib/tokengate keyed by the repository path, linked from .data/postgres.
pg_data_dir() {
  local want="$data/postgres"
  if [ -L "$want" ]; then readlink -f "$want"; return; fi
  if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$data" 2>/dev/null; then echo "$want"; return; fi
  local key; key=$(printf '%s' "$root" | sha1sum | cut -c1-12)
  local alt="/var/lib/tokengate/$key/postgres"
  mkdir -p "$alt"; chown -R postgres: "/var/lib/tokengate/$key"; chmod 755 /var/lib/tokengate
  ln -sfn "$alt" "$want"
  echo "$alt"
}

pg_running() { "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" >/dev/null 2>&1; }
redis_running() { redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; }

start_postgres() {
  if pg_running; then log "PostgreSQL already running on 127.0.0.1:$pg_port"; return; fi
  ensure_postgres_user
  mkdir -p "$data"; chmod 755 "$data"
  local dir; dir=$(pg_data_dir)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$dir" && chmod 700 "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    log "initialising PostgreSQL in $dir"
    as_postgres "$pg_bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
CONF
  fi
  rm -f "$dir/postmaster.pid.stale"
  as_postgres "$pg_bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
  local i
  for i in $(seq 1 100); do pg_running && break; sleep 0.1; done
  pg_running || { log "PostgreSQL did not start; see $dir/server.log"; tail -20 "$dir/server.log" >&2; exit 1; }
  if ! psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "select 1 from pg_database where datname='tokengate'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "create database tokengate" >/dev/null
  fi
  log "PostgreSQL running on 127.0.0.1:$pg_port (database tokengate)"
}

start_redis() {
  if redis_running; then log "Redis already running on 127.0.0.1:$redis_port"; return; fi
  ensure_redis_installed
  mkdir -p "$data/redis"
  redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize yes --dir "$data/redis" \
    --pidfile "$data/redis/redis.pid" --logfile "$data/redis/redis.log" \
    --save "" --appendonly no --protected-mode yes >/dev/null
  local i
  for i in $(seq 1 100); do redis_running && break; sleep 0.1; done
  redis_running || { log "Redis did not start; see $data/redis/redis.log"; exit 1; }
  log "Redis running on 127.0.0.1:$redis_port"
}

stop_all() {
  if pg_running && [ -e "$data/postgres" ]; then
    as_postgres "$pg_bin/pg_ctl" -D "$(readlink -f "$data/postgres")" -m fast -w stop >/dev/null || true
    log "PostgreSQL stopped"
  fi
  if redis_running; then redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; log "Redis stopped"; fi
}

case "${1:-start}" in
  start) start_postgres; start_redis ;;
  stop) stop_all ;;
  status)
    pg_running && echo "postgres: running 127.0.0.1:$pg_port" || echo "postgres: stopped"
    redis_running && echo "redis: running 127.0.0.1:$redis_port" || echo "redis: stopped" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
