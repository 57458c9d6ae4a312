#!/usr/bin/env python3
"""Fetches the real negative set of the fingerprint tests from PyPI and lays it out in DIR.

  python3 negatives.py DIR

- silero-vad 5.1.2 and 6.2.3 (MIT): Silero VAD v5 and v6, independently trained, identical
  architecture and shapes (STFT front-end, 4 convolutions, LSTM, head), each at 16 kHz and
  8 kHz. 6.2.3 also ships a safetensors copy of the v6 16 kHz model (its tinygrad loader's).
- akiki 0.0.6 (Apache-2.0): a voice-activity detector trained from random weights (seed 1730)
  on Silero 6.2.3's outputs, with the same STFT front-end and convolution shapes and a GRU.

The Silero releases keep their weights as ONNX Constant nodes, in the two branches of an If
(16 kHz, 8 kHz). This copies each weight's bytes unchanged into a safetensors file named after
Silero's own safetensors names (pure Python: no onnx or torch). Prints nothing on success.
"""
import json, os, struct, subprocess, sys, zipfile

ONNX_DTYPES = {1: ("F32", 4), 10: ("F16", 2), 11: ("F64", 8), 3: ("I8", 1), 7: ("I64", 8)}
NAMES = {
    "stft.forward_basis_buffer": "stft_conv.weight",
    "encoder.0.reparam_conv.weight": "conv1.weight", "encoder.0.reparam_conv.bias": "conv1.bias",
    "encoder.1.reparam_conv.weight": "conv2.weight", "encoder.1.reparam_conv.bias": "conv2.bias",
    "encoder.2.reparam_conv.weight": "conv3.weight", "encoder.2.reparam_conv.bias": "conv3.bias",
    "encoder.3.reparam_conv.weight": "conv4.weight", "encoder.3.reparam_conv.bias": "conv4.bias",
    "decoder.rnn.weight_ih": "lstm_cell.weight_ih", "decoder.rnn.weight_hh": "lstm_cell.weight_hh",
    "decoder.rnn.bias_ih": "lstm_cell.bias_ih", "decoder.rnn.bias_hh": "lstm_cell.bias_hh",
    "decoder.decoder.2.weight": "final_conv.weight", "decoder.decoder.2.bias": "final_conv.bias",
}


def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def fields(b, start, end):
    """Protocol-buffer fields of b[start:end]: (number, wire type, value or (start, end))."""
    i = start
    while i < end:
        key, i = varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
            yield number, wire, v
        elif wire == 1:
            yield number, wire, None
            i += 8
        elif wire == 5:
            yield number, wire, None
            i += 4
        elif wire == 2:
            n, i = varint(b, i)
            yield number, wire, (i, i + n)
            i += n
        else:
            raise ValueError(f"wire type {wire}")


def tensor_proto(b, span):
    dims, dtype, raw = [], None, None
    for number, wire, v in fields(b, *span):
        if number == 1:
            if wire == 0:
                dims.append(v)
            else:
                j = v[0]
                while j < v[1]:
                    d, j = varint(b, j)
                    dims.append(d)
        elif number == 2:
            dtype = v
        elif number in (9, 4) and wire == 2:  # raw_data, packed float_data
            raw = b[v[0]:v[1]]
    return dtype, dims, raw


def constants(path):
    """Constant-node tensors, keyed by the path of their output through nested graphs."""
    b = open(path, "rb").read()
    out = {}

    def graph(span, prefix):
        for number, wire, v in fields(b, *span):
            if number != 1 or wire != 2:  # GraphProto.node
                continue
            op, outputs, attributes = "", [], []
            for n2, w2, v2 in fields(b, *v):
                if n2 == 2 and w2 == 2:
                    outputs.append(b[v2[0]:v2[1]].decode())
                elif n2 == 4 and w2 == 2:
                    op = b[v2[0]:v2[1]].decode()
                elif n2 == 5 and w2 == 2:
                    attributes.append(v2)
            name = outputs[0] if outputs else ""
            for a in attributes:
                for n3, w3, v3 in fields(b, *a):
                    if n3 == 5 and w3 == 2 and op == "Constant":
                        out[prefix + name] = tensor_proto(b, v3)
                    elif n3 in (6, 11) and w3 == 2:  # subgraph(s) of If / Loop
                        graph(v3, prefix + name + "/")

    for number, wire, v in fields(b, 0, len(b)):
        if number == 7 and wire == 2:  # ModelProto.graph
            graph(v, "")
    return out


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        dtype, dims, raw = tensors[name]
        code, size = ONNX_DTYPES[dtype]
        count = 1
        for d in dims:
            count *= d
        assert len(raw) == count * size, (name, len(raw), dims)
        header[name] = {"dtype": code, "shape": dims, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def main(root):
    os.makedirs(root, exist_ok=True)
    for package in ["silero-vad==5.1.2", "silero-vad==6.2.3", "akiki==0.0.6"]:
        name, version = package.split("==")
        unpacked = os.path.join(root, f"{name}-{version}")
        if os.path.isdir(unpacked):
            continue
        wheels = os.path.join(root, "wheels")
        subprocess.run(["pip", "download", "--no-deps", "-q", "-d", wheels, package], check=True)
        wheel = [w for w in os.listdir(wheels)
                 if w.lower().replace("_", "-").startswith(f"{name}-{version}-")][0]
        zipfile.ZipFile(os.path.join(wheels, wheel)).extractall(unpacked + ".tmp")
        os.replace(unpacked + ".tmp", unpacked)
    converted = os.path.join(root, "converted")
    os.makedirs(converted, exist_ok=True)
    for release, version in [("v5", "5.1.2"), ("v6", "6.2.3")]:
        onnx = os.path.join(root, f"silero-vad-{version}", "silero_vad", "data", "silero_vad.onnx")
        found = None
        for branch, rate in [("then", "16k"), ("else", "8k")]:
            target = os.path.join(converted, f"silero_vad_{release}_{rate}.safetensors")
            if os.path.exists(target):
                continue
            found = found or constants(onnx)
            prefix = f"If_0_outputs_0/If_0_{branch}_branch__Inline_0__"
            tensors = {new: found[prefix + old] for old, new in NAMES.items()}
            write_safetensors(target, tensors)


if __name__ == "__main__":
    main(sys.argv[1])
