#!/usr/bin/env bash
# The read side's benchmarks: indexing throughput (events per second into SQLite and into
# PostgreSQL, from a workload of 50,000 events generated on a managed anvil) and GraphQL latency
# (service time p50, p99 with one client; open-loop latency at 200, 500 and 1,000 requests/s from a
# load generator in its own process) over 100,000 licenses, on both
# databases. Needs the PostgreSQL server at 127.0.0.1:5432 (REGISTRY_TEST_POSTGRES overrides).
#   bash scripts/bench-read-side.sh
# BENCH_EVENTS, BENCH_LICENSES, BENCH_SAMPLES, BENCH_RATES, BENCH_SECONDS change the sizes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# anvil, and the GraphiQL assets the web crate compiles in.
[[ -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil && -f node_modules/graphiql/graphiql.min.js ]] ||
  npm ci --no-audit --no-fund --loglevel=error
cargo bench --locked -p registry --bench indexer
cargo bench --locked -p web --bench api
