"""The delta codec: model deltas as canonical, hash-addressed safetensors bytes.

A delta is ``new_state - base_state`` for every floating-point tensor of the model. It
is written as safetensors (never pickle) in *canonical* form, so the same delta always
gives the same bytes and therefore the same keccak256 hash, the ID under which it is
recorded on chain and fetched from peers:

* an 8-byte little-endian header length, then the JSON header with sorted keys and no
  whitespace, padded with spaces to a multiple of 8, then the tensor data in sorted-name
  order, little-endian, contiguous. (``safetensors.torch.save`` is not canonical: it
  orders tensors by dtype and writes the metadata map in random order.) The result is
  ordinary safetensors that any safetensors reader opens.
* the header metadata (``__metadata__``, strings only) carries ``format``
  (``medgossip-delta/2``), ``model_id``, ``base_hash`` (hex keccak256 of the base
  state, see ``node.models.state_hash``), ``codec`` and ``params`` (canonical JSON).

Codecs and the tensors they write for each model tensor ``NAME``:

    fp32   NAME               float32, the dense delta (exact)
    fp16   NAME               float16, the dense delta rounded to half precision
    int8   q/NAME, s/NAME     int8 values and a float32 [1] scale: symmetric per-tensor
                              quantisation, delta ~= q * s, q in [-127, 127]
    topk   m/NAME, q/NAME,    the k = ceil(fraction * numel) largest-magnitude entries of
           s/NAME             x = delta + residual: ``m`` is a uint8 bitmap of the kept flat
                              positions (``np.packbits`` little bit order, ceil(numel/8)
                              bytes, padding bits zero, popcount exactly k); ``q`` the k
                              kept values in position order, int8 in [-127, 127]; ``s`` one
                              float32 [1] scale, x ~= q * s at the kept positions (s = max
                              |kept| / 127, or 0 with q all zero when that is not a normal
                              float32). Error feedback: the encoder keeps
                              residual = x - decoded, so both the dropped entries and the
                              quantisation error of the kept ones are sent later.

Format history: ``medgossip-delta/1`` wrote top-k as int32 indices + float32 values (8
bytes per kept entry, 4.8x at 10%); ``/2`` (bitmap + int8, ~1/(1/32 + fraction/4) before
the header) replaced it. ``/1`` payloads are rejected with ``UnsupportedFormat``; the
dense codecs' layout is unchanged, only the version string moved with it.

``decode_delta`` treats the payload as hostile: it bounds the size before parsing, checks
the header, then checks every name, dtype, shape, index and value against what the
reference state implies, and only then builds dense float32 tensors. Nothing in a
payload is ever executed; anything unexpected raises a ``node.errors.CodecError``
subclass.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, NewType

import numpy as np
import torch
from torch import Tensor

from node.errors import (
    EncodingError,
    InvalidValues,
    MalformedPayload,
    PayloadTooLarge,
    SchemaMismatch,
    UnsupportedFormat,
)

__all__ = [
    "CODEC_NAMES",
    "DEFAULT_MAX_PAYLOAD",
    "FORMAT_VERSION",
    "RETIRED_FORMATS",
    "CodecName",
    "CodecSpec",
    "DecodedDelta",
    "DeltaEncoder",
    "DeltaHash",
    "DeltaHeader",
    "EncodedDelta",
    "apply_delta",
    "canonical_bytes",
    "decode_delta",
    "payload_hash",
    "topk_count",
]

DeltaHash = NewType("DeltaHash", bytes)
CodecName = Literal["fp32", "fp16", "int8", "topk"]

FORMAT_VERSION: Final = "medgossip-delta/2"
RETIRED_FORMATS: Final = ("medgossip-delta/1",)
CODEC_NAMES: Final = ("fp32", "fp16", "int8", "topk")
DEFAULT_MAX_PAYLOAD: Final = 64 * 1024 * 1024  # the gossip layer's payload bound
MAX_HEADER_BYTES: Final = 1024 * 1024
_INT8_MAX: Final = 127
_F32_TINY: Final = float(np.finfo(np.float32).tiny)  # smallest normal float32

# safetensors dtype tags <-> numpy little-endian dtypes (only what the codec writes or
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
_TORCH_OF_TAG: Final = {tag: dt for dt, (tag, _) in _ST_DTYPES.items()}
_NP_OF_TAG: Final = {tag: np.dtype(npd) for _, (tag, npd) in _ST_DTYPES.items()}


# --- records ------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecSpec:
    """Which codec to use; ``topk_fraction`` only matters for ``topk``."""

    name: CodecName = "fp32"
    topk_fraction: float = 0.01

    def __post_init__(self) -> None:
        if self.name not in CODEC_NAMES:
            raise UnsupportedFormat(f"unknown codec {self.name!r}; known: {CODEC_NAMES}")
        if self.name == "topk" and not (0.0 < self.topk_fraction <= 1.0):
            raise UnsupportedFormat(f"topk fraction must be in (0, 1], got {self.topk_fraction}")

    def params(self) -> dict[str, float]:
        """The codec parameters written into the header."""
        return {"fraction": self.topk_fraction} if self.name == "topk" else {}

    @property
    def label(self) -> str:
        """Short human label, e.g. ``topk-1%``."""
        if self.name == "topk":
            return f"topk-{self.topk_fraction * 100:g}%"
        return self.name


@dataclass(frozen=True)
class DeltaHeader:
    """What the payload says about itself (validated before any tensor is read)."""

    format: str
    model_id: str
    base_hash: bytes
    codec: CodecSpec


@dataclass(frozen=True)
class EncodedDelta:
    """A payload ready to record (``delta_hash``) and serve (``payload``)."""

    payload: bytes
    delta_hash: DeltaHash
    header: DeltaHeader

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass(frozen=True)
class DecodedDelta:
    """A validated delta: dense float32 tensors keyed and shaped like the reference."""

    header: DeltaHeader
    tensors: Mapping[str, Tensor] = field(repr=False)


# --- canonical safetensors ------------------------------------------------------------


def _as_numpy(name: str, tensor: Tensor) -> np.ndarray:
    if tensor.dtype not in _ST_DTYPES:
        raise EncodingError(f"tensor {name!r} has unsupported dtype {tensor.dtype}")
    arr = tensor.detach().to("cpu").contiguous().numpy()
    return np.ascontiguousarray(arr, dtype=_NP_OF_TAG[_ST_DTYPES[tensor.dtype][0]])


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
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    head = text.encode("ascii")
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def payload_hash(payload: bytes) -> DeltaHash:
    """keccak256 of the payload bytes: the delta's identity on chain and on the wire."""
    from eth_hash.auto import keccak

    return DeltaHash(bytes(keccak(payload)))


# --- encoding -------------------------------------------------------------------------


def topk_count(numel: int, fraction: float) -> int:
    """Entries kept per tensor by top-k: ceil(fraction * numel), at least 1 (0 if empty)."""
    if numel <= 0:
        return 0
    return max(1, min(numel, math.ceil(fraction * numel - 1e-9)))


def _float_keys(state: Mapping[str, Tensor]) -> list[str]:
    return sorted(k for k, v in state.items() if torch.is_floating_point(v))


class DeltaEncoder:
    """Encodes ``new_state - base_state`` with one codec; keeps the top-k residual.

    One encoder per peer and model: with ``topk`` whatever the payload does not carry
    (the entries not selected and the int8 rounding error of the selected ones) is kept
    in ``residual`` and added to the next delta (error feedback), so that nothing is
    lost, only delayed. ``get_residual`` / ``set_residual`` expose it as plain tensors so the
    node can checkpoint it (with safetensors) and resume after a restart.
    """

    def __init__(self, spec: CodecSpec, model_id: str) -> None:
        self.spec = spec
        self.model_id = model_id
        self._residual: dict[str, Tensor] = {}

    # error feedback state ------------------------------------------------------------

    def get_residual(self) -> dict[str, Tensor]:
        """A copy of the top-k residual (empty for other codecs or before any encode)."""
        return {k: v.clone() for k, v in self._residual.items()}

    def set_residual(self, residual: Mapping[str, Tensor]) -> None:
        """Restore a residual saved with ``get_residual`` (float32, finite)."""
        restored: dict[str, Tensor] = {}
        for name, tensor in residual.items():
            if not torch.is_floating_point(tensor) or not bool(torch.isfinite(tensor).all()):
                raise EncodingError(f"residual {name!r} must be finite floating point")
            restored[name] = tensor.detach().to("cpu", torch.float32).clone()
        self._residual = restored

    def reset_residual(self) -> None:
        self._residual = {}

    # encoding ------------------------------------------------------------------------

    def encode(
        self,
        new_state: Mapping[str, Tensor],
        base_state: Mapping[str, Tensor],
        base_hash: bytes,
    ) -> EncodedDelta:
        """Encode the delta between two states of the same model.

        ``base_hash`` is the ``state_hash`` of ``base_state`` (32 bytes), written into
        the header so the receiver knows what the delta applies to. Raises
        ``EncodingError`` when the states disagree in keys/shapes or hold NaN/inf.
        """
        if len(base_hash) != 32:
            raise EncodingError(f"base_hash must be 32 bytes, got {len(base_hash)}")
        keys = _float_keys(base_state)
        if keys != _float_keys(new_state):
            raise EncodingError("new and base states have different floating-point tensors")
        tensors: dict[str, Tensor] = {}
        for name in keys:
            new, base = new_state[name], base_state[name]
            if new.shape != base.shape:
                raise EncodingError(f"{name}: shape {tuple(new.shape)} != {tuple(base.shape)}")
            delta = new.detach().to("cpu", torch.float32) - base.detach().to("cpu", torch.float32)
            if not bool(torch.isfinite(delta).all()):
                raise EncodingError(f"{name}: delta holds NaN or inf")
            tensors.update(self._encode_tensor(name, delta))
        header = DeltaHeader(FORMAT_VERSION, self.model_id, bytes(base_hash), self.spec)
        payload = canonical_bytes(tensors, _header_metadata(header))
        return EncodedDelta(payload=payload, delta_hash=payload_hash(payload), header=header)

    def _encode_tensor(self, name: str, delta: Tensor) -> dict[str, Tensor]:
        codec = self.spec.name
        if codec == "fp32":
            return {name: delta.contiguous()}
        if codec == "fp16":
            half = delta.to(torch.float16)
            if not bool(torch.isfinite(half).all()):
                raise EncodingError(f"{name}: delta overflows float16")
            return {name: half}
        if codec == "int8":
            amax = float(delta.abs().max()) if delta.numel() else 0.0
            scale = amax / _INT8_MAX if amax > 0 else 0.0
            if scale > 0:
                q = torch.round(delta / scale).clamp_(-_INT8_MAX, _INT8_MAX).to(torch.int8)
            else:
                q = torch.zeros_like(delta, dtype=torch.int8)
            return {f"q/{name}": q, f"s/{name}": torch.tensor([scale], dtype=torch.float32)}
        # topk with error feedback
        flat = delta.reshape(-1)
        residual = self._residual.get(name)
        if residual is not None:
            if residual.shape != delta.shape:
                raise EncodingError(f"{name}: residual shape {tuple(residual.shape)} is stale")
            flat = flat + residual.reshape(-1)
            if not bool(torch.isfinite(flat).all()):
                raise EncodingError(f"{name}: delta + residual overflows float32")
        numel = flat.numel()
        k = topk_count(numel, self.spec.topk_fraction)
        # Ties are broken by index (stable sort) so the choice is deterministic.
        order = torch.sort(flat.abs(), descending=True, stable=True).indices[:k]
        mask = torch.zeros(numel, dtype=torch.bool)
        mask[order] = True
        kept = flat[mask]  # in increasing position order
        q, scale = _quantise_kept(kept)
        sent = torch.zeros(numel, dtype=torch.float32)
        # Exactly what decode_delta rebuilds (float32 q * float32 scale).
        sent[mask] = q.to(torch.float32) * torch.tensor(scale, dtype=torch.float32)
        self._residual[name] = (flat - sent).reshape(delta.shape)
        bitmap = np.packbits(mask.numpy(), bitorder="little")
        return {
            f"m/{name}": torch.from_numpy(bitmap),
            f"q/{name}": q,
            f"s/{name}": torch.tensor([scale], dtype=torch.float32),
        }


def _quantise_kept(kept: Tensor) -> tuple[Tensor, float]:
    """Symmetric int8 quantisation of the kept top-k values: (q in [-127, 127], scale).

    The scale is a float32 value (``max|kept| / 127`` rounded to float32), so that
    ``max|q| == 127`` whenever the scale is non-zero; when it would not be a normal
    float32 (all kept values zero or vanishingly small) it is 0 and q is all zero, and
    error feedback keeps the values for a later round. The decoder enforces both rules,
    so one delta has one byte string.
    """
    amax = float(kept.abs().max()) if kept.numel() else 0.0
    scale = float(np.float32(amax / _INT8_MAX))
    if not scale >= _F32_TINY:
        return torch.zeros(kept.shape, dtype=torch.int8), 0.0
    q = torch.round(kept / scale).clamp_(-_INT8_MAX, _INT8_MAX).to(torch.int8)
    return q, scale


def _header_metadata(header: DeltaHeader) -> dict[str, str]:
    return {
        "format": header.format,
        "model_id": header.model_id,
        "base_hash": header.base_hash.hex(),
        "codec": header.codec.name,
        "params": json.dumps(header.codec.params(), sort_keys=True, separators=(",", ":")),
    }


# --- decoding -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    tag: str
    shape: tuple[int, ...]
    start: int
    end: int


def _parse_container(payload: bytes, max_bytes: int) -> tuple[dict[str, str], dict[str, _Entry], int]:
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
    data_len = len(payload) - data_start
    entries: dict[str, _Entry] = {}
    for name, info in raw_header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise MalformedPayload(f"tensor entry {name!r} is malformed")
        tag, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if tag not in _NP_OF_TAG:
            raise SchemaMismatch(f"tensor {name!r} has unsupported dtype {tag!r}")
        if not (isinstance(shape, list) and all(type(d) is int and 0 <= d < 2**31 for d in shape)):
            raise MalformedPayload(f"tensor {name!r} has an invalid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise MalformedPayload(f"tensor {name!r} has invalid data offsets")
        start, end = offsets
        if not (0 <= start <= end <= data_len):
            raise MalformedPayload(f"tensor {name!r} data lies outside the payload (truncated?)")
        if end - start != math.prod(shape) * _NP_OF_TAG[tag].itemsize:
            raise MalformedPayload(f"tensor {name!r}: byte length does not match its shape")
        entries[name] = _Entry(tag, tuple(shape), start, end)
    # Canonical layout: data contiguous in sorted-name order and covering the buffer.
    cursor = 0
    for name in sorted(entries):
        if entries[name].start != cursor:
            raise MalformedPayload("tensor data is not laid out canonically")
        cursor = entries[name].end
    if cursor != data_len:
        raise MalformedPayload(f"{data_len - cursor} bytes of data unaccounted for (trailing or truncated)")
    return metadata, entries, data_start


def _parse_header(metadata: Mapping[str, str]) -> DeltaHeader:
    expected = {"format", "model_id", "base_hash", "codec", "params"}
    if set(metadata) != expected:
        raise UnsupportedFormat(f"header keys {sorted(metadata)} != {sorted(expected)}")
    if metadata["format"] in RETIRED_FORMATS:
        raise UnsupportedFormat(
            f"format {metadata['format']!r} is retired (its top-k layout was replaced); "
            f"this node reads {FORMAT_VERSION!r} only"
        )
    if metadata["format"] != FORMAT_VERSION:
        raise UnsupportedFormat(f"format {metadata['format']!r} is not {FORMAT_VERSION!r}")
    try:
        base_hash = bytes.fromhex(metadata["base_hash"])
    except ValueError as exc:
        raise UnsupportedFormat("base_hash is not hex") from exc
    if len(base_hash) != 32:
        raise UnsupportedFormat("base_hash is not 32 bytes")
    codec = metadata["codec"]
    if codec not in CODEC_NAMES:
        raise UnsupportedFormat(f"unknown codec {codec!r}")
    try:
        params = json.loads(metadata["params"])
    except ValueError as exc:
        raise UnsupportedFormat("codec params are not JSON") from exc
    if not isinstance(params, dict):
        raise UnsupportedFormat("codec params are not a JSON object")
    if codec == "topk":
        fraction = params.get("fraction")
        if set(params) != {"fraction"} or type(fraction) not in (int, float):
            raise UnsupportedFormat("topk needs exactly one numeric param 'fraction'")
        spec = CodecSpec("topk", float(fraction))  # validates the range
    else:
        if params:
            raise UnsupportedFormat(f"codec {codec!r} takes no params, got {sorted(params)}")
        spec = CodecSpec(codec)  # type: ignore[arg-type]
    return DeltaHeader(metadata["format"], metadata["model_id"], base_hash, spec)


def _expected_entries(
    spec: CodecSpec, reference: Mapping[str, Tensor]
) -> dict[str, tuple[str, tuple[int, ...]]]:
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name in _float_keys(reference):
        shape = tuple(reference[name].shape)
        if spec.name == "fp32":
            out[name] = ("F32", shape)
        elif spec.name == "fp16":
            out[name] = ("F16", shape)
        elif spec.name == "int8":
            out[f"q/{name}"] = ("I8", shape)
            out[f"s/{name}"] = ("F32", (1,))
        else:
            numel = math.prod(shape)
            k = topk_count(numel, spec.topk_fraction)
            out[f"m/{name}"] = ("U8", ((numel + 7) // 8,))
            out[f"q/{name}"] = ("I8", (k,))
            out[f"s/{name}"] = ("F32", (1,))
    return out


def decode_delta(
    payload: bytes,
    reference_state: Mapping[str, Tensor],
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD,
    model_id: str | None = None,
    base_hash: bytes | None = None,
) -> DecodedDelta:
    """Validate ``payload`` against ``reference_state`` and return the dense delta.

    ``reference_state`` is the receiver's own model state: it defines the only accepted
    tensor names, shapes and (codec-implied) dtypes. ``model_id`` / ``base_hash``, when
    given, must match the header. Raises a ``CodecError`` subclass on anything else;
    never executes or unpickles anything.
    """
    metadata, entries, data_start = _parse_container(payload, max_bytes)
    header = _parse_header(metadata)
    if model_id is not None and header.model_id != model_id:
        raise UnsupportedFormat(f"model id {header.model_id!r} is not {model_id!r}")
    if base_hash is not None and header.base_hash != bytes(base_hash):
        raise UnsupportedFormat("base model hash differs from the expected base")
    expected = _expected_entries(header.codec, reference_state)
    missing = sorted(set(expected) - set(entries))
    extra = sorted(set(entries) - set(expected))
    if missing or extra:
        raise SchemaMismatch(f"tensor names differ: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, (tag, shape) in expected.items():
        entry = entries[name]
        if entry.tag != tag:
            raise SchemaMismatch(f"{name}: dtype {entry.tag} where {tag} is expected")
        if entry.shape != shape:
            raise SchemaMismatch(f"{name}: shape {entry.shape} where {shape} is expected")

    def read(name: str) -> np.ndarray:
        entry = entries[name]
        buf = payload[data_start + entry.start : data_start + entry.end]
        return np.frombuffer(buf, dtype=_NP_OF_TAG[entry.tag]).reshape(entry.shape)

    tensors: dict[str, Tensor] = {}
    for name in _float_keys(reference_state):
        shape = tuple(reference_state[name].shape)
        if header.codec.name in ("fp32", "fp16"):
            arr = read(name).astype(np.float32)
        elif header.codec.name == "int8":
            scale = float(read(f"s/{name}")[0])
            if not math.isfinite(scale) or scale < 0:
                raise InvalidValues(f"{name}: int8 scale {scale} is not finite and >= 0")
            q = read(f"q/{name}")
            if bool((q == -128).any()):
                raise InvalidValues(f"{name}: int8 value -128 is outside [-127, 127]")
            arr = q.astype(np.float32) * np.float32(scale)
        else:
            numel = math.prod(shape)
            k = topk_count(numel, header.codec.topk_fraction)
            mask = _read_bitmap(name, read(f"m/{name}"), numel, k)
            scale = _read_topk_scale(name, float(read(f"s/{name}")[0]))
            q = read(f"q/{name}")
            if bool((q == -128).any()):
                raise InvalidValues(f"{name}: int8 value -128 is outside [-127, 127]")
            qmax = int(np.abs(q.astype(np.int16)).max()) if q.size else 0
            if scale == 0.0 and qmax != 0:
                raise InvalidValues(f"{name}: top-k scale is 0 but values are not all zero")
            if scale > 0.0 and qmax != _INT8_MAX:
                raise InvalidValues(f"{name}: top-k values not scaled to max |q| == 127 (non-canonical)")
            dense = np.zeros(numel, dtype=np.float32)
            with np.errstate(over="ignore"):  # overflow -> inf, rejected just below
                dense[mask] = q.astype(np.float32) * np.float32(scale)
            arr = dense.reshape(shape)
        if not bool(np.isfinite(arr).all()):
            raise InvalidValues(f"{name}: NaN or inf in the delta")
        tensors[name] = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))
    return DecodedDelta(header=header, tensors=tensors)


def _read_bitmap(name: str, bitmap: np.ndarray, numel: int, k: int) -> np.ndarray:
    """The kept-position mask of a top-k tensor: canonical padding, exactly k bits set."""
    bits = np.unpackbits(bitmap, bitorder="little")
    if bool(bits[numel:].any()):
        raise InvalidValues(f"{name}: top-k bitmap has non-zero padding bits")
    mask = bits[:numel].astype(bool)
    count = int(np.count_nonzero(mask))
    if count != k:
        raise InvalidValues(f"{name}: top-k bitmap marks {count} positions where {k} are expected")
    return mask


def _read_topk_scale(name: str, scale: float) -> float:
    if not math.isfinite(scale) or math.copysign(1.0, scale) < 0:
        raise InvalidValues(f"{name}: top-k scale {scale} is not finite and >= +0")
    if 0.0 < scale < _F32_TINY:
        raise InvalidValues(f"{name}: top-k scale {scale} is subnormal (non-canonical)")
    return scale


def apply_delta(
    state: Mapping[str, Tensor], delta: Mapping[str, Tensor], scale: float = 1.0
) -> dict[str, Tensor]:
    """``state + scale * delta`` for the tensors in ``delta``; other entries copied."""
    out: dict[str, Tensor] = {}
    for name, tensor in state.items():
        if name in delta:
            out[name] = (tensor.detach().to(torch.float32) + scale * delta[name]).to(tensor.dtype)
        else:
            out[name] = tensor.detach().clone()
    return out
