#!/usr/bin/env python3
"""Writes packed-quantized copies of a safetensors model, one folder per format, as the
quantizers' own exporters lay them out, and the dequantized values a reader must get.

  python3 packed_variants.py SAFETENSORS DIR

Installs numpy, ml_dtypes 0.5.4 (the OCP FP8/FP4/E8M0 number formats, as JAX uses them) and
safetensors 0.7.0 (whose own serializer writes every file, F8_E4M3 and F8_E8M0 included) into
DIR/site with pip when they are missing. The quantizers themselves (AutoGPTQ, AutoAWQ,
bitsandbytes, ModelOpt, DeepSeek's and gpt-oss's scripts) need PyTorch, several GB from PyPI
with its CUDA packages, so their packing and dequantizing code is ported here to numpy line
for line (each function names the code it follows).

Every 2-D `*.weight` of an `encoder.`/`pooler.` Linear layer is quantized (round to nearest:
GPTQ's layout does not depend on how the integers were chosen), the rest stays as stored, as
these tools keep embeddings and norms. For each FORMAT in gptq4 (4-bit, act-order g_idx,
asymmetric), gptq8 (8-bit, symmetric, no act-order), awq (4-bit GEMM), bnb-int8, bnb-nf4
(double-quantized absmax), fp8-block (DeepSeek-V3's 128 x 128 `weight_scale_inv`), fp8-channel
(per-row `weight_scale`), mxfp4 (gpt-oss's `_blocks`/`_scales`) and nvfp4 (ModelOpt) it
writes DIR/FORMAT/model.safetensors, DIR/FORMAT/config.json (with the `quantization_config`
the tool writes) and DIR/FORMAT.reference: each quantized tensor dequantized by the format's
own dequantizer (ported), in float32, as lines `NAME COUNT` each followed by COUNT
little-endian f32s in `out x in` order. Prints nothing on success.
"""
import json, os, sys

from testdata import install, read_safetensors

source, out = sys.argv[1], sys.argv[2]
install(os.path.join(out, "site"), "ml_dtypes", ["numpy", "ml_dtypes==0.5.4", "safetensors==0.7.0"])
import numpy as np  # noqa: E402
import ml_dtypes  # noqa: E402
from safetensors import serialize_file  # noqa: E402

F32 = np.float32
rng = np.random.default_rng(15)
tensors = dict(read_safetensors(source))


def linear(name, array):
    return (array.ndim == 2 and name.endswith(".weight")
            and (name.startswith("encoder.") or name.startswith("pooler.")))


def entry(array, dtype=None):
    """A tensor for safetensors' serializer, under its numpy/ml_dtypes type name."""
    array = np.ascontiguousarray(array)
    return {"dtype": dtype or array.dtype.name, "shape": list(array.shape), "data": array.tobytes()}


# --- GPTQ: AutoGPTQ's QuantLinear.pack (qlinear_cuda_old.py) and its torch dequantization.

def gptq(w, bits, group, act_order, sym):
    out_f, in_f = w.shape
    maxq = 2 ** bits - 1
    if act_order:  # GPTQ's desc_act: groups follow a permutation of the inputs.
        perm = rng.permutation(in_f)
        g_idx = np.empty(in_f, dtype=np.int32)
        g_idx[perm] = np.arange(in_f) // group
    else:
        g_idx = (np.arange(in_f) // group).astype(np.int32)
    groups = in_f // group
    scales = np.zeros((groups, out_f), F32)
    zeros = np.zeros((groups, out_f), np.int64)
    for g in range(groups):  # GPTQ's Quantizer.find_params, per output row of the group.
        cols = w[:, g_idx == g]
        xmin = np.minimum(cols.min(axis=1), 0)
        xmax = np.maximum(cols.max(axis=1), 0)
        if sym:
            xmax = np.maximum(np.abs(xmin), xmax)
            xmin = -xmax
        scale = np.where(xmax > xmin, (xmax - xmin) / maxq, 1.0)
        zero = np.full(out_f, (maxq + 1) // 2) if sym else np.round(-xmin / scale)
        scales[g], zeros[g] = scale, zero
    scales = scales.astype(np.float16)
    s = scales.astype(F32)
    intweight = np.clip(np.round(w / s[g_idx].T) + zeros[g_idx].T, 0, maxq).astype(np.uint32).T  # in x out
    pack = 32 // bits
    qweight = np.zeros((in_f // pack, out_f), np.uint32)
    for row in range(in_f // pack):
        for j in range(pack):
            qweight[row] |= intweight[row * pack + j] << np.uint32(bits * j)
    zeros_m1 = (zeros - 1).astype(np.uint32)  # AutoGPTQ stores zero points minus one
    qzeros = np.zeros((groups, out_f // pack), np.uint32)
    for col in range(out_f // pack):
        for j in range(pack):
            qzeros[:, col] |= zeros_m1[:, col * pack + j] << np.uint32(bits * j)
    # Dequantization, as QuantLinear.forward's torch path computes it (in float32 here).
    shifts = np.arange(0, 32, bits, dtype=np.uint32)
    z = ((qzeros[:, :, None] >> shifts) & maxq).reshape(groups, out_f)
    z = (z + 1) & maxq
    q = ((qweight[:, None, :] >> shifts[None, :, None]) & maxq).reshape(in_f, out_f)
    deq = (q.astype(np.int32) - z[g_idx].astype(np.int32)).astype(F32) * s[g_idx]
    return ({"qweight": entry(qweight.view(np.int32)), "qzeros": entry(qzeros.view(np.int32)),
             "scales": entry(scales), "g_idx": entry(g_idx)}, deq.T)


# --- AWQ: AutoAWQ's WQLinear_GEMM.from_linear and awq.utils.packing_utils.dequantize_gemm.

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def awq(w, group=128):
    out_f, in_f = w.shape
    groups = in_f // group
    wg = w.reshape(out_f, groups, group)
    mx, mn = wg.max(axis=2), wg.min(axis=2)
    scales = ((mx - mn).clip(min=1e-5) / 15).astype(np.float16)  # AutoAWQ's pseudo_quantize_tensor
    s = scales.astype(F32)
    zeros = np.clip(-np.round(mn / s), 0, 15).astype(np.int64)  # out x groups
    intweight = np.clip(np.round(wg / s[:, :, None]) + zeros[:, :, None], 0, 15)
    intweight = intweight.reshape(out_f, in_f).T.astype(np.uint32)  # in x out
    qweight = np.zeros((in_f, out_f // 8), np.uint32)
    for col in range(out_f // 8):
        for i in range(8):
            qweight[:, col] |= intweight[:, col * 8 + AWQ_ORDER[i]] << np.uint32(i * 4)
    zt = zeros.T.astype(np.uint32)  # groups x out
    qzeros = np.zeros((groups, out_f // 8), np.uint32)
    for col in range(out_f // 8):
        for i in range(8):
            qzeros[:, col] |= zt[:, col * 8 + AWQ_ORDER[i]] << np.uint32(i * 4)
    shifts = np.arange(0, 32, 4, dtype=np.uint32)

    def unpack(packed):
        vals = ((packed[:, :, None] >> shifts) & 15).reshape(packed.shape[0], -1)
        order = np.arange(vals.shape[1]).reshape(-1, 8)[:, AWQ_REVERSE_ORDER].reshape(-1)
        return vals[:, order].astype(np.int32)

    iw, iz = unpack(qweight), unpack(qzeros)
    deq = (iw - np.repeat(iz, group, axis=0)).astype(F32) * np.repeat(scales.T.astype(F32), group, axis=0)
    return ({"qweight": entry(qweight.view(np.int32)), "qzeros": entry(qzeros.view(np.int32)),
             "scales": entry(scales.T.copy())}, deq.T)


# --- bitsandbytes: int8_vectorwise_quant / Int8Params' state dict, and quantize_4bit with
# compress_statistics (QuantState.as_dict(packed=True)), with their dequantizers.

NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], F32)


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    data = []
    non_sign_bits = total_bits - 1
    for i in range(max_exponent_bits):
        items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                    else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = np.linspace(0.1, 1, items, dtype=F32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data += [0, 1.0]
    data += [0] * (256 - len(data))
    return np.array(sorted(data), F32)


def bnb_int8(w):
    scb = np.abs(w).max(axis=1).astype(F32)
    cb = np.round(w * (F32(127.0) / scb[:, None])).astype(np.int8)
    deq = (cb.astype(F32) * scb[:, None]) * F32(7.874015718698502e-3)
    return {"weight": entry(cb), "SCB": entry(scb), "weight_format": entry(np.array(0, np.uint8))}, deq


def nearest(values, code):
    return np.abs(values[:, None] - code[None, :]).argmin(axis=1).astype(np.uint8)


def bnb_nf4(w, blocksize=64, nested_blocksize=256):
    flat = w.reshape(-1)
    blocks = flat.reshape(-1, blocksize)
    absmax = np.abs(blocks).max(axis=1).astype(F32)
    codes = nearest((blocks / absmax[:, None]).reshape(-1), NF4)
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8).reshape(-1, 1)
    offset = F32(absmax.mean())
    centred = absmax - offset
    dynamic = create_dynamic_map()
    nested_absmax = np.abs(centred.reshape(-1, nested_blocksize)).max(axis=1).astype(F32) \
        if centred.size % nested_blocksize == 0 else None
    assert nested_absmax is not None, "absmax count is whole nested blocks"
    absmax_codes = nearest(centred / np.repeat(nested_absmax, nested_blocksize), dynamic)
    state = {"quant_type": "nf4", "blocksize": blocksize, "dtype": "float16", "shape": list(w.shape),
             "nested_blocksize": nested_blocksize, "nested_dtype": "float32", "nested_offset": float(offset)}
    state_bytes = np.frombuffer(json.dumps(state).encode(), np.uint8)
    # dequantize_4bit: absmax = dequantize_blockwise(absmax, state2) + offset, then code * absmax.
    real_absmax = dynamic[absmax_codes] * np.repeat(nested_absmax, nested_blocksize) + offset
    deq = (NF4[codes].reshape(-1, blocksize) * real_absmax[:, None]).reshape(w.shape)
    return ({"weight": entry(packed), "weight.absmax": entry(absmax_codes), "weight.quant_map": entry(NF4),
             "weight.nested_absmax": entry(nested_absmax), "weight.nested_quant_map": entry(dynamic),
             "weight.quant_state.bitsandbytes__nf4": entry(state_bytes)}, deq)


# --- FP8: DeepSeek-V3's block quantization (inference/kernel.py weight_dequant) and
# compressed-tensors' per-channel float quantization.

E4M3 = ml_dtypes.float8_e4m3fn
E4M3_MAX = F32(448.0)


def fp8_block(w, block=128):
    out_f, in_f = w.shape
    rows, cols = -(-out_f // block), -(-in_f // block)
    s = np.zeros((rows, cols), F32)
    q = np.zeros(w.shape, E4M3)
    for r in range(rows):
        for c in range(cols):
            tile = w[r * block:(r + 1) * block, c * block:(c + 1) * block]
            s[r, c] = np.abs(tile).max() / E4M3_MAX
            q[r * block:(r + 1) * block, c * block:(c + 1) * block] = (tile / s[r, c]).astype(E4M3)
    full = np.repeat(np.repeat(s, block, axis=0), block, axis=1)[:out_f, :in_f]
    deq = q.astype(F32) * full
    return {"weight": entry(q), "weight_scale_inv": entry(s)}, deq


def fp8_channel(w):
    s = (np.abs(w).max(axis=1, keepdims=True) / E4M3_MAX).astype(F32)
    q = (w / s).astype(E4M3)
    return {"weight": entry(q), "weight_scale": entry(s)}, q.astype(F32) * s


# --- MXFP4 (gpt-oss: convert_moe_packed_tensors) and NVFP4 (ModelOpt's NVFP4QTensor).

E2M1 = ml_dtypes.float4_e2m1fn
FP4_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                       -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], F32)


def fp4_codes(x):
    return np.clip(x, -6, 6).astype(E2M1).view(np.uint8) & 0x0F


def pack_fp4(codes):
    """Two E2M1 codes a byte, the first in the low nibble."""
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def mxfp4(w):
    out_f, in_f = w.shape
    g = w.reshape(out_f, in_f // 32, 32)
    amax = np.abs(g).max(axis=2)
    e = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1))) - 2, -127).astype(np.int32)
    scale = np.ldexp(np.ones_like(amax, F32), e)
    codes = fp4_codes(g / scale[:, :, None])
    blocks = pack_fp4(codes)  # out x G x 16
    scales = (e + 127).astype(np.uint8)
    lo, hi = blocks & 0x0F, blocks >> 4
    sub = np.empty((out_f, in_f // 32, 32), F32)
    sub[:, :, 0::2], sub[:, :, 1::2] = FP4_VALUES[lo], FP4_VALUES[hi]
    deq = np.ldexp(sub, scales.astype(np.int32)[:, :, None] - 127).reshape(out_f, in_f)
    return {"weight_blocks": entry(blocks), "weight_scales": entry(scales)}, deq


def nvfp4(w):
    out_f, in_f = w.shape
    s2 = F32(np.abs(w).max() / (F32(6.0) * E4M3_MAX))
    g = w.reshape(out_f, in_f // 16, 16)
    s = (np.abs(g).max(axis=2) / F32(6.0) / s2).astype(E4M3)
    block_scale = s.astype(F32) * s2
    codes = fp4_codes(g / np.where(block_scale == 0, 1, block_scale)[:, :, None]).reshape(out_f, in_f)
    packed = pack_fp4(codes)
    deq = FP4_VALUES[codes] * np.repeat(block_scale, 16, axis=1)
    return ({"weight": entry(packed), "weight_scale": entry(s), "weight_scale_2": entry(np.array(s2, F32)),
             "input_scale": entry(np.array(1.0, F32))}, deq)


FORMATS = {
    "gptq4": (lambda w: gptq(w, 4, 128, True, False),
              {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True, "sym": False,
               "checkpoint_format": "gptq"}),
    "gptq8": (lambda w: gptq(w, 8, 128, False, True),
              {"quant_method": "gptq", "bits": 8, "group_size": 128, "desc_act": False, "sym": True}),
    "awq": (awq, {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": True}),
    "bnb-int8": (bnb_int8, {"quant_method": "bitsandbytes", "load_in_8bit": True}),
    "bnb-nf4": (bnb_nf4, {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                          "bnb_4bit_use_double_quant": True}),
    "fp8-block": (fp8_block, {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                              "weight_block_size": [128, 128]}),
    "fp8-channel": (fp8_channel, {"quant_method": "compressed-tensors", "format": "float-quantized"}),
    "mxfp4": (mxfp4, {"quant_method": "mxfp4"}),
    "nvfp4": (nvfp4, {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}),
}

for kind, (quantize, config) in FORMATS.items():
    folder = os.path.join(out, kind)
    os.makedirs(folder, exist_ok=True)
    entries, reference = {}, []
    for name, array in tensors.items():
        if not linear(name, array):
            entries[name] = entry(array)
            continue
        prefix = name[:-len(".weight")]
        parts, deq = quantize(array.astype(F32))
        for suffix, part in parts.items():
            entries[f"{prefix}.{suffix}"] = part
        deq = np.ascontiguousarray(deq, F32)
        assert deq.shape == array.shape, (kind, name, deq.shape)
        reference.append((name, deq))
    serialize_file(entries, os.path.join(folder, "model.safetensors.partial"), None)
    os.replace(os.path.join(folder, "model.safetensors.partial"), os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "quantization_config": config}, f, indent=1)
    with open(os.path.join(out, f"{kind}.reference.partial"), "wb") as f:
        for name, deq in reference:
            f.write(f"{name} {deq.size}\n".encode())
            f.write(deq.astype("<f4").tobytes())
    os.replace(os.path.join(out, f"{kind}.reference.partial"), os.path.join(out, f"{kind}.reference"))
