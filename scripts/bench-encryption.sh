#!/usr/bin/env bash
# What encryption costs: mint of a 1 GB model in plaintext and with --encrypt, and download of
# the encrypted model (fetch, decrypt, fingerprint check) from the embedded store, on a managed
# anvil. Writes the synthetic 1 GB bf16 model under target/bench-data/ first.
#   bash scripts/bench-encryption.sh [SIZE_MB] [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ]] || npm ci --no-audit --no-fund --loglevel=error
size=${1:-1024}
runs=${2:-3}
mkdir -p target/bench-data
model="target/bench-data/synthetic-${size}mb-bf16.safetensors"
[[ -f $model ]] || cargo run --locked --release -p fingerprint --example synthetic -- "$model" "$size" bf16
BENCH_DIR="$PWD/target/bench-data" cargo bench --locked -p registry --bench encryption -- "$PWD/$model" "$runs"
