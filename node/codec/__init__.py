"""The delta codec: model deltas as canonical, hash-addressed safetensors bytes.

A delta is ``new_state - base_state`` for every floating-point tensor of the model. It
is written as canonical safetensors (never pickle), so the same delta always gives the
same bytes and therefore the same keccak256 hash, the ID under which it is recorded on
chain and fetched from peers. The header metadata (``__metadata__``, strings only)
carries ``format`` (``medgossip-delta/3``), ``model_id``, ``base_hash`` (hex keccak256
of the base state, see ``node.models.state_hash``), ``codec``, ``params`` (canonical
JSON), and the binding to the chain record: ``author`` (the recording node's checksummed
address), ``round`` (its local round) and ``nonce`` (see ``header.py``). Receivers check
author and round against the record (``decode_delta(..., author=, round=)``); an author
whose hash was front-run records the same delta again under a fresh hash (``rebind``).

Each codec is one object in one module, holding its encoder, the tensors it writes
(their names, dtypes and shapes) and its decoder, as Flower keeps one strategy per
module. To add a codec, write a ``Codec`` subclass and list it in ``CODECS``:

    base.py       the ``Codec`` interface
    fp32.py       NAME: float32, the dense delta (exact)
    fp16.py       NAME: float16, the dense delta rounded to half precision
    int8.py       q/NAME, s/NAME: symmetric per-tensor int8 quantisation
    topk.py       m/NAME, q/NAME, s/NAME: the largest entries as a bitmap + int8 values,
                  with error feedback (the encoder keeps what it did not send)
    canonical.py  canonical safetensors bytes, their keccak256, the container parser
    header.py     ``CODECS``, ``CodecSpec``, the header fields, their parsing and checks
    delta.py      the records, ``DeltaEncoder``, ``rebind``, ``read_header``, ``decode_delta``

Format history: ``medgossip-delta/1`` wrote top-k as int32 indices + float32 values (8
bytes per kept entry, 4.8x at 10%); ``/2`` (bitmap + int8, ~1/(1/32 + fraction/4) before
the header) replaced it; ``/3`` added ``author``, ``round`` and ``nonce`` to the header.
Retired formats are rejected with ``UnsupportedFormat`` naming why (``RETIRED_FORMATS``):
the peers of one network run one version. The tensor layouts did not change in ``/3``.

``decode_delta`` treats the payload as hostile: it bounds the size before parsing, checks
the header, then checks every name, dtype, shape, index and value against what the
reference state implies, and only then builds dense float32 tensors. Nothing in a
payload is ever executed; anything unexpected raises a ``node.errors.CodecError``
subclass.
"""

from __future__ import annotations

from typing import Final

from node.codec.base import Codec
from node.codec.canonical import MAX_HEADER_BYTES, DeltaHash, canonical_bytes, payload_hash
from node.codec.delta import (
    DEFAULT_MAX_PAYLOAD,
    DecodedDelta,
    DeltaEncoder,
    EncodedDelta,
    apply_delta,
    decode_delta,
    read_header,
    rebind,
)
from node.codec.header import CODECS, FORMAT_VERSION, RETIRED_FORMATS, CodecSpec, DeltaHeader
from node.codec.topk import topk_count

__all__ = [
    "CODECS",
    "CODEC_NAMES",
    "DEFAULT_MAX_PAYLOAD",
    "FORMAT_VERSION",
    "MAX_HEADER_BYTES",
    "RETIRED_FORMATS",
    "Codec",
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
    "read_header",
    "rebind",
    "topk_count",
]

CODEC_NAMES: Final = tuple(CODECS)
"""The codec names, in documentation order (the keys of ``CODECS``)."""

CodecName = str
"""A key of ``CODECS`` (checked when a ``CodecSpec`` is built)."""
