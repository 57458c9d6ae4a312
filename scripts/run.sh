#!/usr/bin/env bash
# The main job on embedded defaults: installs the pinned toolchain (npm ci: anvil, the
# contracts' toolchain and the GraphiQL assets), builds the `registry` program and runs the
# whole market in one process: `registry up` (a managed anvil whose chain is kept in
# .registry/, the contracts deployed on first start, the embedded content store, the SQLite
# index, the indexer, the keeper, the web app and the API). On first start it seeds a small
# demo market (`--demo`); later starts resume it. Ctrl-C stops everything. Extra arguments go
# to `registry up` (see `registry up --help`), e.g. `--listen 0.0.0.0:8080`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# anvil, and the GraphiQL assets the web crate compiles in (a checkout that ran `npm ci` before
# they were added has the first but not the second).
[[ -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil && -f node_modules/graphiql/graphiql.min.js ]] ||
  npm ci --no-audit --no-fund --loglevel=error
cargo build --release --locked -p registry-cli
exec target/release/registry up --demo "$@"
