#!/usr/bin/env python3
"""Writes GGUF copies of a safetensors model with llama.cpp's own `gguf` package (PyPI), as
llama.cpp's converter would: tensors renamed to llama.cpp's names (`token_embd.weight`,
`blk.0.attn_q.weight`, …) by the package's own name map for the BERT architecture.

  python3 gguf_variants.py SAFETENSORS DIR

Installs gguf 0.19.0 and numpy into DIR/site with pip when they are missing. Writes
DIR/model-f16.gguf (every float tensor F16; DIR/model-f16-tokens.gguf also carries the
vocabulary, `tokenizer.ggml.tokens`, from the vocab.txt beside the model) and DIR/model-TYPE.gguf for TYPE in q8_0, q4_0,
q4_1, q5_0, q5_1, mxfp4 (every 2-D tensor whose rows are whole blocks of 32 quantized by the package's
`quants.quantize`; the rest F32, as the converter keeps norms and biases), and for each
quantized type DIR/TYPE.reference: the package's own `quants.dequantize` of the first six
quantized tensors of at most 2^20 weights (tens of thousands of blocks), as lines `NAME COUNT` each followed by COUNT little-endian f32s, to check a reader
against, block by block. The package cannot quantize into the K-quants, IQ4_NL, IQ4_XS or
NVFP4 (and TQ1_0 and TQ2_0 need rows of 256), so DIR/blocks.gguf holds, for each of Q2_K,
Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4 and NVFP4, an 8 x 1024 tensor of
random blocks (their f16 scales set to finite values, MXFP4's exponents to moderate ones),
and DIR/blocks.reference the package's dequantization of each. Prints nothing on success.
"""
import os, sys

from testdata import install, read_safetensors

source, out = sys.argv[1], sys.argv[2]
install(os.path.join(out, "site"), "gguf", ["gguf==0.19.0", "numpy"])
import numpy as np  # noqa: E402
import gguf  # noqa: E402

tensors = read_safetensors(source)

names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, 6)
Q = gguf.GGMLQuantizationType


def vocabulary():
    """The model's WordPiece vocabulary by id, from the vocab.txt beside it."""
    with open(os.path.join(os.path.dirname(source), "vocab.txt"), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def write(kind, tokens=False):
    path = os.path.join(out, f"model-{kind}{'-tokens' if tokens else ''}.gguf")
    writer = gguf.GGUFWriter(path + ".partial", arch="bert")
    if tokens:
        writer.add_token_list(vocabulary())
    reference = []
    for name, array in tensors:
        name = names.get_name(name, try_suffixes=(".weight", ".bias")) or name
        if array.dtype != np.float32:
            writer.add_tensor(name, array)
        elif kind == "f16":
            writer.add_tensor(name, array.astype(np.float16))
        elif array.ndim == 2 and array.shape[1] % 32 == 0:
            qtype = Q[kind.upper()]
            quantized = gguf.quants.quantize(array, qtype)
            writer.add_tensor(name, quantized, raw_dtype=qtype)
            if len(reference) < 6 and array.size <= 1 << 20:
                reference.append((name, gguf.quants.dequantize(quantized, qtype).astype("<f4")))
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(path + ".partial", path)
    if reference:
        with open(os.path.join(out, f"{kind}.reference.partial"), "wb") as f:
            for name, values in reference:
                f.write(f"{name} {values.size}\n".encode())
                f.write(values.tobytes())
        os.replace(os.path.join(out, f"{kind}.reference.partial"), os.path.join(out, f"{kind}.reference"))


def save_reference(path, reference):
    with open(path + ".partial", "wb") as f:
        for name, values in reference:
            f.write(f"{name} {values.size}\n".encode())
            f.write(values.tobytes())
    os.replace(path + ".partial", path)


def blocks():
    """Random blocks of the types the package dequantizes but cannot quantize (and of the
    ternary ones, which would flatten a real model's rows of 384), each block's scale set to a
    finite value, and the package's dequantization of each."""
    path = os.path.join(out, "blocks.gguf")
    rng = np.random.default_rng(1234)
    writer = gguf.GGUFWriter(path + ".partial", arch="bert")
    reference = []
    # Where each type keeps its f16 scale (and min); MXFP4's E8M0 exponent is its first byte.
    scales_at = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
                 "IQ4_NL": (0,), "IQ4_XS": (0,), "TQ1_0": (52,), "TQ2_0": (64,), "MXFP4": (), "NVFP4": ()}
    for kind, offsets in scales_at.items():
        qtype = Q[kind]
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        rows, per_row = 8, 1024 // block_size
        raw = rng.integers(0, 256, size=(rows * per_row, type_size), dtype=np.uint8)
        for at in offsets:
            scale = rng.uniform(-0.05, 0.05, size=rows * per_row).astype(np.float16)
            raw[:, at:at + 2] = scale.view(np.uint8).reshape(-1, 2)
        if kind == "MXFP4":
            raw[:, 0] = rng.integers(100, 150, size=rows * per_row, dtype=np.uint8)
        data = raw.reshape(rows, per_row * type_size)
        writer.add_tensor(kind.lower(), data, raw_dtype=qtype)
        reference.append((kind.lower(), gguf.quants.dequantize(data, qtype).astype("<f4")))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    save_reference(os.path.join(out, "blocks.reference"), reference)
    os.replace(path + ".partial", path)


for kind in ["f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "mxfp4"]:
    if not os.path.exists(os.path.join(out, f"model-{kind}.gguf")):
        write(kind)
if not os.path.exists(os.path.join(out, "blocks.gguf")):
    blocks()
if not os.path.exists(os.path.join(out, "model-f16-tokens.gguf")):
    write("f16", tokens=True)
