"""Reads and writes .safetensors with numpy alone, independent of the C++ loader."""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def float32_to_bf16_bits(values):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_float64(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def encode(values, dtype):
    """Encodes float values as a safetensors dtype; returns the raw array to store."""
    if dtype == "F32":
        return np.ascontiguousarray(values, dtype=np.float32)
    if dtype == "F16":
        return np.ascontiguousarray(values, dtype=np.float16)
    if dtype == "BF16":
        return float32_to_bf16_bits(values)
    raise ValueError(f"unsupported dtype {dtype}")


def write(path, tensors, metadata=None):
    """tensors: {name: (dtype, float array)}; stored in the given order, 8-byte aligned header."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name, (dtype, values) in tensors.items():
        raw = encode(values, dtype)
        blob = raw.tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(values)),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read(path):
    """Returns {name: float64 array}."""
    with open(path, "rb") as f:
        data = f.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    base = 8 + header_size
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = np.frombuffer(data[base + begin:base + end], dtype=_DTYPES[entry["dtype"]])
        values = bf16_bits_to_float64(raw) if entry["dtype"] == "BF16" else raw.astype(np.float64)
        tensors[name] = values.reshape(entry["shape"])
    return tensors
