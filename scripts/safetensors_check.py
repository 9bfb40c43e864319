"""Minimal reader of lorta statistics files (safetensors, F64 tensors) for the scripts."""
import json
import struct

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    dtypes = {"F64": "<f8", "I64": "<i8", "F32": "<f4"}
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        tensors[name] = np.frombuffer(raw[base + b:base + end], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
    return meta, tensors


def scatter_of(path):
    """(count, scatter matrix) of a lorta statistics file."""
    meta, t = read_safetensors(path)
    assert meta["format"] == "lorta.activation-statistics", meta
    return int(meta["count"]), t["scatter"]
