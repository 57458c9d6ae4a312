#!/usr/bin/env bash
# Peak memory of reading a quantized model as the fingerprint reads it: a synthetic GGUF of
# 32 tensors of 4096 x 4096 weights in Q4_0 (written by llama.cpp's gguf package; 302 MB on
# disk, 2.1 GB as f32) and a 4-bit GPTQ safetensors of the same weights, each read tensor
# by tensor (examples/read_all.rs). Prints the file size, the f32 size and the peak RSS.
#   bash scripts/bench-memory.sh [--profile dev]   (memory does not depend on the profile)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
profile=release
[[ "${1:-}" == --profile ]] && profile="$2"
cargo build --profile "$profile" --locked -q -p fingerprint --example read_all
bin=target/$([[ $profile == dev ]] && echo debug || echo "$profile")/examples/read_all
data=target/bench-data/memory
mkdir -p "$data"
site="$data/site"
[[ -d "$site/gguf" ]] || python3 -m pip install --quiet --disable-pip-version-check --target "$site" gguf==0.19.0 numpy safetensors==0.7.0
PYTHONPATH="$site" python3 - "$data" <<'PY'
import os, sys
import numpy as np, gguf
from safetensors.numpy import save_file
out = sys.argv[1]
rng = np.random.default_rng(7)
n, side = 32, 4096
gg = os.path.join(out, "q4_0.gguf")
st = os.path.join(out, "gptq4.safetensors")
if not os.path.exists(gg) or not os.path.exists(st):
    writer = gguf.GGUFWriter(gg + ".partial", arch="llama")
    packed = {}
    for i in range(n):
        w = rng.standard_normal((side, side), dtype=np.float32) * 0.02
        q = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0)
        writer.add_tensor(f"blk.{i}.ffn_up.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        # A 4-bit GPTQ layout of random integers: only its size matters here.
        p = f"model.layers.{i}.mlp.up_proj"
        packed[f"{p}.qweight"] = rng.integers(-2**31, 2**31, size=(side // 8, side), dtype=np.int32)
        packed[f"{p}.qzeros"] = np.full((side // 128, side // 8), 0x77777777, dtype=np.int32)
        packed[f"{p}.scales"] = np.full((side // 128, side), 0.01, dtype=np.float16)
        packed[f"{p}.g_idx"] = (np.arange(side) // 128).astype(np.int32)
    writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
    os.replace(gg + ".partial", gg)
    save_file(packed, st)
PY
for f in "$data/q4_0.gguf" "$data/gptq4.safetensors"; do
  size=$(stat -c %s "$f")
  peak=$( { /usr/bin/time -v "$bin" "$f" > "$data/out.txt"; } 2>&1 | awk -F': ' '/Maximum resident/ {print $2}')
  printf '%s: %.0f MB on disk, %.0f MB as f32, peak RSS %.0f MB; %s\n' "$(basename "$f")" \
    "$(echo "$size / 1000000" | bc -l)" "$(echo "32 * 4096 * 4096 * 4 / 1000000" | bc -l)" \
    "$(echo "$peak / 1000" | bc -l)" "$(cat "$data/out.txt")"
done
