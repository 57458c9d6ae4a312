#!/usr/bin/env bash
# The main job on embedded defaults: installs the pinned toolchain, builds the `registry`
# program, starts a managed anvil, deploys the contracts and prints their addresses. anvil keeps
# serving until Ctrl-C. Extra arguments go to `registry deploy` (see `--help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# anvil, and the GraphiQL assets the web crate compiles in (a checkout that ran `npm ci` before
# they were added has the first but not the second).
[[ -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil && -f node_modules/graphiql/graphiql.min.js ]] ||
  npm ci --no-audit --no-fund --loglevel=error
cargo build --release --locked -p registry-cli
exec target/release/registry deploy "$@"
