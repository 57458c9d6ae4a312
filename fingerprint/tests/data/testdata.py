"""Shared by the test-data writers beside it: the registry packages they need, installed with
pip into a folder of the test data, and a safetensors file's tensors read with numpy."""
import json, os, struct, subprocess, sys


def install(site, marker, packages):
    """Installs `packages` into `site` unless `site/marker` is there, and puts `site` first
    on the import path."""
    if not os.path.isdir(os.path.join(site, marker)):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", site, *packages], check=True)
    sys.path.insert(0, site)


def read_safetensors(path):
    """The tensors of the safetensors file `path` (F32, F16 or I64), sorted by name, as
    (name, numpy array)."""
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    tensors = []
    for name, info in sorted(header.items()):
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors.append((name, np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])))
    return tensors
