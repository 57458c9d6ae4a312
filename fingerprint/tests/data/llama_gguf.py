#!/usr/bin/env python3
"""Writes a Llama-architecture safetensors model as GGUF the way llama.cpp's converter
(convert_hf_to_gguf.py, LlamaModel) does, with llama.cpp's own `gguf` package (PyPI):
tensors renamed by the package's name map for LLAMA, and the query and key projections'
rows permuted for llama.cpp's rotary layout (`LlamaModel.permute`: per head, the two halves
of the head's rows interleaved).

  python3 llama_gguf.py SAFETENSORS HEADS DIR

Installs gguf 0.19.0 and numpy into DIR/site with pip when they are missing. Writes
DIR/llama-f16.gguf (every float tensor F16) and DIR/llama-q8_0.gguf (2-D tensors whose rows
are whole blocks of 32 in Q8_0, the rest F32). Prints nothing on success.
"""
import os, re, sys

from testdata import install, read_safetensors

source, heads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
install(os.path.join(out, "site"), "gguf", ["gguf==0.19.0", "numpy"])
import numpy as np  # noqa: E402
import gguf  # noqa: E402

tensors = read_safetensors(source)
assert all(array.dtype == np.float32 for _, array in tensors), "an F32 model"
layers = 1 + max(int(m.group(1)) for name, _ in tensors if (m := re.match(r"model\.layers\.(\d+)\.", name)))
names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)


def permute(weights, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


for kind in ["f16", "q8_0"]:
    path = os.path.join(out, f"llama-{kind}.gguf")
    writer = gguf.GGUFWriter(path + ".partial", arch="llama")
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_block_count(layers)
    for name, array in tensors:
        if name.endswith("q_proj.weight") or name.endswith("k_proj.weight"):
            array = permute(array, heads, heads)
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert mapped, name
        if kind == "f16":
            writer.add_tensor(mapped, array.astype(np.float16))
        elif array.ndim == 2 and array.shape[1] % 32 == 0:
            qtype = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(mapped, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(mapped, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(path + ".partial", path)
