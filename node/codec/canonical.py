"""Canonical safetensors: one content, one byte string, one keccak256 hash.

``canonical_bytes`` writes an 8-byte little-endian header length, the JSON header with
sorted keys and no whitespace padded with spaces to a multiple of 8, then the tensor
data in sorted-name order, little-endian, contiguous. (``safetensors.torch.save`` is not
canonical: it orders tensors by dtype and writes the metadata map in random order.) The
result is ordinary safetensors that any safetensors reader opens.

``parse_container`` is the hostile-input half: it bounds the size before parsing and
accepts only what ``canonical_bytes`` could have written.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NewType

import numpy as np
import torch
from eth_hash.auto import keccak
from torch import Tensor

from node.errors import EncodingError, MalformedPayload, PayloadTooLarge, SchemaMismatch

__all__ = [
    "MAX_HEADER_BYTES",
    "NP_OF_TAG",
    "DeltaHash",
    "Entry",
    "canonical_bytes",
    "parse_container",
    "payload_hash",
    "with_metadata",
]

DeltaHash = NewType("DeltaHash", bytes)

MAX_HEADER_BYTES: Final = 1024 * 1024

# safetensors dtype tags <-> numpy little-endian dtypes (only what the codecs write or
# what model states contain).
_ST_DTYPES: Final[dict[torch.dtype, tuple[str, str]]] = {
    torch.float32: ("F32", "<f4"),
    torch.float16: ("F16", "<f2"),
    torch.float64: ("F64", "<f8"),
    torch.int8: ("I8", "<i1"),
    torch.int32: ("I32", "<i4"),
    torch.int64: ("I64", "<i8"),
    torch.uint8: ("U8", "<u1"),
}
NP_OF_TAG: Final = {tag: np.dtype(npd) for _, (tag, npd) in _ST_DTYPES.items()}


def _as_numpy(name: str, tensor: Tensor) -> np.ndarray:
    if tensor.dtype not in _ST_DTYPES:
        raise EncodingError(f"tensor {name!r} has unsupported dtype {tensor.dtype}")
    arr = tensor.detach().to("cpu").contiguous().numpy()
    return np.ascontiguousarray(arr, dtype=NP_OF_TAG[_ST_DTYPES[tensor.dtype][0]])


def canonical_bytes(tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> bytes:
    """Serialise ``tensors`` as canonical safetensors bytes (see the module docstring).

    Same tensors (names, dtypes, shapes, values) and metadata -> same bytes, on every
    machine. Accepts CPU or non-contiguous tensors (they are copied).
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise EncodingError("'__metadata__' is reserved and cannot name a tensor")
        tensor = tensors[name]
        raw = _as_numpy(name, tensor).tobytes()
        header[name] = {
            "dtype": _ST_DTYPES[tensor.dtype][0],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    return _header_bytes(header) + b"".join(chunks)


def with_metadata(payload: bytes, metadata: Mapping[str, str]) -> bytes:
    """Canonical ``payload`` with its metadata replaced; the tensor bytes are untouched.

    Raises a ``CodecError`` subclass if ``payload`` is not canonical safetensors.
    """
    _, entries, data_start = parse_container(payload, len(payload))
    header: dict[str, object] = {
        name: {"dtype": e.tag, "shape": list(e.shape), "data_offsets": [e.start, e.end]}
        for name, e in entries.items()
    }
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    return _header_bytes(header) + payload[data_start:]


def _header_bytes(header: Mapping[str, object]) -> bytes:
    """The length prefix and the JSON header: sorted keys, no whitespace, space-padded."""
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    head = text.encode("ascii")
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head


def payload_hash(payload: bytes) -> DeltaHash:
    """keccak256 of the payload bytes: the delta's identity on chain and on the wire."""
    return DeltaHash(bytes(keccak(payload)))


@dataclass(frozen=True)
class Entry:
    """One tensor of a parsed payload: dtype tag, shape and byte range in the data."""

    tag: str
    shape: tuple[int, ...]
    start: int
    end: int


def parse_container(payload: bytes, max_bytes: int) -> tuple[dict[str, str], dict[str, Entry], int]:
    """Bounds and structure checks; returns (metadata, entries, data start)."""
    if len(payload) > max_bytes:
        raise PayloadTooLarge(f"payload is {len(payload)} bytes, bound is {max_bytes}")
    if len(payload) < 8:
        raise MalformedPayload(f"truncated: {len(payload)} bytes, no header length")
    (head_len,) = struct.unpack_from("<Q", payload, 0)
    if head_len > MAX_HEADER_BYTES:
        raise MalformedPayload(f"header length {head_len} exceeds {MAX_HEADER_BYTES} bytes")
    if 8 + head_len > len(payload):
        raise MalformedPayload(f"truncated: header needs {head_len} bytes, payload has {len(payload) - 8}")
    try:
        raw_header = json.loads(payload[8 : 8 + head_len].decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedPayload("header is not ASCII JSON") from exc
    if not isinstance(raw_header, dict):
        raise MalformedPayload("header is not a JSON object")
    canonical = json.dumps(raw_header, sort_keys=True, separators=(",", ":")).encode("ascii")
    canonical += b" " * (-len(canonical) % 8)
    if canonical != payload[8 : 8 + head_len]:
        # One content, one byte string, one hash: reject re-ordered/duplicated keys.
        raise MalformedPayload("header is not in canonical form")
    metadata = raw_header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise MalformedPayload("header has no string-to-string __metadata__")
    data_start = 8 + head_len
    entries = {name: _entry(name, info, len(payload) - data_start) for name, info in raw_header.items()}
    # Canonical layout: data contiguous in sorted-name order and covering the buffer.
    cursor = 0
    for name in sorted(entries):
        if entries[name].start != cursor:
            raise MalformedPayload("tensor data is not laid out canonically")
        cursor = entries[name].end
    data_len = len(payload) - data_start
    if cursor != data_len:
        raise MalformedPayload(f"{data_len - cursor} bytes of data unaccounted for (trailing or truncated)")
    return metadata, entries, data_start


def _entry(name: str, info: object, data_len: int) -> Entry:
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise MalformedPayload(f"tensor entry {name!r} is malformed")
    tag, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(tag, str) or tag not in NP_OF_TAG:
        raise SchemaMismatch(f"tensor {name!r} has unsupported dtype {tag!r}")
    if not (isinstance(shape, list) and all(type(d) is int and 0 <= d < 2**31 for d in shape)):
        raise MalformedPayload(f"tensor {name!r} has an invalid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise MalformedPayload(f"tensor {name!r} has invalid data offsets")
    start, end = offsets
    if not (0 <= start <= end <= data_len):
        raise MalformedPayload(f"tensor {name!r} data lies outside the payload (truncated?)")
    if end - start != math.prod(shape) * NP_OF_TAG[tag].itemsize:
        raise MalformedPayload(f"tensor {name!r}: byte length does not match its shape")
    return Entry(tag, tuple(shape), start, end)
