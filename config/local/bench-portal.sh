#!/usr/bin/env bash
# `make bench-portal`: the portal at scale (issue #8, item 9). Generates, in a PostgreSQL database of its own
# (default tokengate_bench_portal, kept between runs and reused when it already holds data of the same size),
# 10 million usage rows across 10,000 users with one user owning 1 million, with their consume ledger entries
# and the daily roll-ups; then times, for that user, what each page runs on the server (the page's queries as
# the page model calls them; Razor rendering and HTTP excluded): dashboard, usage page 1, usage page 100 with a
# model filter, request detail, ledger, the admin overview pages' queries,
# and streaming the user's whole CSV. Prints p50/p95 per page as a Markdown table (docs/benchmarks.md, "Portal").
#
# Generating the data takes a while (tens of minutes on a busy 2-core machine) and about 10 GB of disk.
# Knobs (environment): BENCH_PORTAL_ROWS=10000000 BENCH_PORTAL_USERS=10000 BENCH_PORTAL_BIG_USER_ROWS=1000000
#   BENCH_PORTAL_ITERATIONS=40 BENCH_PORTAL_DATABASE=tokengate_bench_portal
# Drop the database when done: psql -h 127.0.0.1 -p 55432 -U postgres -c 'DROP DATABASE tokengate_bench_portal'
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

dotnet build tests/Gateway.Benchmarks -c Release -nologo -v q -clp:NoSummary
exec dotnet tests/Gateway.Benchmarks/bin/Release/net10.0/Gateway.Benchmarks.dll portal \
  --rows "${BENCH_PORTAL_ROWS:-10000000}" \
  --users "${BENCH_PORTAL_USERS:-10000}" \
  --big-user-rows "${BENCH_PORTAL_BIG_USER_ROWS:-1000000}" \
  --iterations "${BENCH_PORTAL_ITERATIONS:-40}" \
  --database "${BENCH_PORTAL_DATABASE:-tokengate_bench_portal}"
