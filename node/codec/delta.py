"""Deltas: the records, the encoder with its top-k residual, ``rebind``, and the decoder.

The codec objects (``CODECS``) know their own tensors and ``header.py`` the header; this
module knows what every delta shares: which model tensors are sent (the floating-point
ones, by sorted name), and the order of the decoder's checks (size and structure, then
the header, then the header against what the caller expects, then names/dtypes/shapes
against the receiver's own state, then values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
import torch
from torch import Tensor

from node.codec.canonical import (
    NP_OF_TAG,
    DeltaHash,
    canonical_bytes,
    parse_container,
    payload_hash,
    with_metadata,
)
from node.codec.header import (
    FORMAT_VERSION,
    CodecSpec,
    DeltaHeader,
    check_binding,
    check_expected,
    header_metadata,
    parse_header,
)
from node.errors import EncodingError, InvalidValues, SchemaMismatch

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "DecodedDelta",
    "DeltaEncoder",
    "EncodedDelta",
    "apply_delta",
    "decode_delta",
    "read_header",
    "rebind",
]

DEFAULT_MAX_PAYLOAD: Final = 64 * 1024 * 1024  # the gossip layer's payload bound


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


def _float_keys(state: Mapping[str, Tensor]) -> list[str]:
    return sorted(k for k, v in state.items() if torch.is_floating_point(v))


# --- encoding -------------------------------------------------------------------------


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

    def encode(
        self,
        new_state: Mapping[str, Tensor],
        base_state: Mapping[str, Tensor],
        base_hash: bytes,
        *,
        author: str,
        round: int,  # noqa: A002 - the header field and the chain record's name
        nonce: int = 0,
    ) -> EncodedDelta:
        """Encode the delta between two states of the same model.

        ``base_hash`` is the ``state_hash`` of ``base_state`` (32 bytes), written into
        the header so the receiver knows what the delta applies to. ``author`` (the
        recording node's address, written checksummed) and ``round`` (its local round,
        as it records on chain) bind the payload to its record. Raises
        ``EncodingError`` when the states disagree in keys/shapes or hold NaN/inf, or
        the author is empty or not an address; the residual then stays as it was.
        """
        if len(base_hash) != 32:
            raise EncodingError(f"base_hash must be 32 bytes, got {len(base_hash)}")
        checksummed = check_binding(author, round, nonce)
        keys = _float_keys(base_state)
        if keys != _float_keys(new_state):
            raise EncodingError("new and base states have different floating-point tensors")
        codec = self.spec.codec
        tensors: dict[str, Tensor] = {}
        residual: dict[str, Tensor] = {}
        for name in keys:
            new, base = new_state[name], base_state[name]
            if new.shape != base.shape:
                raise EncodingError(f"{name}: shape {tuple(new.shape)} != {tuple(base.shape)}")
            delta = new.detach().to("cpu", torch.float32) - base.detach().to("cpu", torch.float32)
            if not bool(torch.isfinite(delta).all()):
                raise EncodingError(f"{name}: delta holds NaN or inf")
            encoded = codec.encode(name, delta, self.spec, self._residual.get(name))
            tensors.update(encoded.tensors)
            if encoded.residual is not None:
                residual[name] = encoded.residual
        self._residual.update(residual)
        header = DeltaHeader(
            FORMAT_VERSION, self.model_id, bytes(base_hash), self.spec, checksummed, round, nonce
        )
        payload = canonical_bytes(tensors, header_metadata(header))
        return EncodedDelta(payload=payload, delta_hash=payload_hash(payload), header=header)


def rebind(payload: bytes, nonce: int) -> EncodedDelta:
    """The same delta under another hash: ``payload`` with ``nonce`` in its header.

    When another node records our delta hash first (front-running), the author records
    the delta again under this fresh hash; the tensor bytes are identical, only the
    header's nonce differs. Raises ``EncodingError`` for a nonce out of range or equal to
    the payload's own (same hash), a ``CodecError`` subclass if ``payload`` is not a
    current-format delta.
    """
    header = read_header(payload, max_bytes=len(payload))
    check_binding(header.author, header.round, nonce)
    if nonce == header.nonce:
        raise EncodingError(f"the payload already carries nonce {nonce}: rebinding would keep its hash")
    rebound = replace(header, nonce=nonce)
    new_payload = with_metadata(payload, header_metadata(rebound))
    return EncodedDelta(payload=new_payload, delta_hash=payload_hash(new_payload), header=rebound)


# --- decoding -------------------------------------------------------------------------


def read_header(payload: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> DeltaHeader:
    """The checked header of ``payload``, without reading its tensors.

    Bounds and container structure are checked as by ``decode_delta``; raises a
    ``CodecError`` subclass on anything unexpected.
    """
    metadata, _, _ = parse_container(payload, max_bytes)
    return parse_header(metadata)


def decode_delta(
    payload: bytes,
    reference_state: Mapping[str, Tensor],
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD,
    model_id: str | None = None,
    base_hash: bytes | None = None,
    author: str | None = None,
    round: int | None = None,  # noqa: A002 - the header field and the chain record's name
) -> DecodedDelta:
    """Validate ``payload`` against ``reference_state`` and return the dense delta.

    ``reference_state`` is the receiver's own model state: it defines the only accepted
    tensor names, shapes and (codec-implied) dtypes. ``model_id``, ``base_hash``,
    ``author`` (compared case-insensitively) and ``round``, when given, must match the
    header, else ``HeaderMismatch`` names the field. Raises a ``CodecError`` subclass on
    anything else; never executes or unpickles anything.
    """
    metadata, entries, data_start = parse_container(payload, max_bytes)
    header = parse_header(metadata)
    check_expected(header, model_id=model_id, base_hash=base_hash, author=author, round_=round)
    spec = header.codec
    shapes = {name: tuple(reference_state[name].shape) for name in _float_keys(reference_state)}
    expected: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, shape in shapes.items():
        expected.update(spec.codec.entries(name, shape, spec))
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
        return np.frombuffer(buf, dtype=NP_OF_TAG[entry.tag]).reshape(entry.shape)

    tensors: dict[str, Tensor] = {}
    for name, shape in shapes.items():
        arr = spec.codec.decode(name, shape, spec, read)
        if not bool(np.isfinite(arr).all()):
            raise InvalidValues(f"{name}: NaN or inf in the delta")
        tensors[name] = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))
    return DecodedDelta(header=header, tensors=tensors)


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
