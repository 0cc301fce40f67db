"""The payload header: what a delta says about itself, and who it binds.

The header metadata (``__metadata__``, strings only) of format ``medgossip-delta/3``:

    format     ``medgossip-delta/3``
    model_id   the model architecture name
    base_hash  hex keccak256 of the base state (``node.models.state_hash``)
    codec      a key of ``CODECS``
    params     the codec parameters, canonical JSON
    author     the recording node's address, EIP-55 checksummed
    round      the author's local round, decimal, 1 <= round < 2**64 (as on chain)
    nonce      decimal, 0 <= nonce < 2**64; 0 unless the delta was rebound (``rebind``)

``author`` and ``round`` bind the payload to its chain record: a receiver checks both
against the record its hash was fetched under, so a node that records another node's
hash first gains nothing. ``nonce`` only changes the hash, so the author can record the
same delta again under a fresh hash. Every value has one spelling (checksummed address,
decimal without leading zeros), so one header has one byte string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from eth_utils import is_checksum_address, to_checksum_address

from node.codec.base import Codec
from node.codec.fp16 import Fp16Codec
from node.codec.fp32 import Fp32Codec
from node.codec.int8 import Int8Codec
from node.codec.topk import TopKCodec
from node.errors import EncodingError, HeaderMismatch, UnsupportedFormat

__all__ = [
    "CODECS",
    "FORMAT_VERSION",
    "RETIRED_FORMATS",
    "CodecSpec",
    "DeltaHeader",
    "check_binding",
    "check_expected",
    "header_metadata",
    "parse_header",
]

CODECS: Final[Mapping[str, Codec]] = MappingProxyType(
    {codec.name: codec for codec in (Fp32Codec(), Fp16Codec(), Int8Codec(), TopKCodec())}
)
"""Every codec by name, in documentation order: the one list of codec names."""

FORMAT_VERSION: Final = "medgossip-delta/3"
RETIRED_FORMATS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "medgossip-delta/1": "its top-k layout (int32 indices + float32 values) was replaced",
        "medgossip-delta/2": "its header does not name the author and round that receivers "
        "check against the chain record",
    }
)
"""Formats this node refuses, with the reason (the peers of one network run one version)."""

_UINT64_LIMIT: Final = 2**64
_HEADER_KEYS: Final = frozenset(
    {"format", "model_id", "base_hash", "codec", "params", "author", "round", "nonce"}
)
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class CodecSpec:
    """Which codec to use; ``topk_fraction`` only matters for ``topk``."""

    name: str = "fp32"
    topk_fraction: float = 0.01

    def __post_init__(self) -> None:
        if self.name not in CODECS:
            raise UnsupportedFormat(f"unknown codec {self.name!r}; known: {tuple(CODECS)}")
        self.codec.check(self)

    @property
    def codec(self) -> Codec:
        """The object that encodes, lays out and decodes this codec's tensors."""
        return CODECS[self.name]

    def params(self) -> dict[str, float]:
        """The codec parameters written into the header."""
        return self.codec.params(self)

    @property
    def label(self) -> str:
        """Short human label, e.g. ``topk-1%``."""
        return self.codec.label(self)


@dataclass(frozen=True)
class DeltaHeader:
    """What the payload says about itself (validated before any tensor is read)."""

    format: str
    model_id: str
    base_hash: bytes
    codec: CodecSpec
    author: str
    """the recording node's address, EIP-55 checksummed."""
    round: int
    nonce: int = 0


def check_binding(author: object, round_: object, nonce: object) -> str:
    """Validate what the encoder is asked to bind; returns the checksummed author.

    Raises ``EncodingError``: an empty author is a peer that forgot to say who it is.
    """
    if not isinstance(author, str):
        raise EncodingError(f"author must be an address string, got {type(author).__name__}")
    if not author:
        raise EncodingError("author is empty: set the recording node's address before encoding")
    body = author[2:] if _HEX_ADDRESS.fullmatch(author) else None
    mixed_case = body is not None and body.lower() != body and body.upper() != body
    if body is None or (mixed_case and not is_checksum_address(author)):
        raise EncodingError(f"author {author[:64]!r} is not an Ethereum address (or its checksum is wrong)")
    for name, value, low in (("round", round_, 1), ("nonce", nonce, 0)):
        if type(value) is not int or not low <= value < _UINT64_LIMIT:
            raise EncodingError(f"{name} must be an int in [{low}, 2**64), got {value!r}")
    return to_checksum_address(author)


def header_metadata(header: DeltaHeader) -> dict[str, str]:
    """The header as the string-to-string safetensors metadata (one spelling per value)."""
    return {
        "format": header.format,
        "model_id": header.model_id,
        "base_hash": header.base_hash.hex(),
        "codec": header.codec.name,
        "params": json.dumps(header.codec.params(), sort_keys=True, separators=(",", ":")),
        "author": header.author,
        "round": str(header.round),
        "nonce": str(header.nonce),
    }


def parse_header(metadata: Mapping[str, str]) -> DeltaHeader:
    """Read untrusted header metadata; raises ``UnsupportedFormat`` on anything off."""
    fmt = metadata.get("format")
    if fmt in RETIRED_FORMATS:
        raise UnsupportedFormat(
            f"format {fmt!r} is retired ({RETIRED_FORMATS[fmt]}); this node reads "
            f"{FORMAT_VERSION!r} only, and every peer of a network must run the same version"
        )
    if fmt != FORMAT_VERSION:
        raise UnsupportedFormat(f"format {fmt!r} is not {FORMAT_VERSION!r}")
    if set(metadata) != _HEADER_KEYS:
        raise UnsupportedFormat(f"header keys {sorted(metadata)} != {sorted(_HEADER_KEYS)}")
    try:
        base_hash = bytes.fromhex(metadata["base_hash"])
    except ValueError as exc:
        raise UnsupportedFormat("base_hash is not hex") from exc
    if len(base_hash) != 32:
        raise UnsupportedFormat("base_hash is not 32 bytes")
    codec = CODECS.get(metadata["codec"])
    if codec is None:
        raise UnsupportedFormat(f"unknown codec {metadata['codec']!r}")
    try:
        params = json.loads(metadata["params"])
    except ValueError as exc:
        raise UnsupportedFormat("codec params are not JSON") from exc
    if not isinstance(params, dict):
        raise UnsupportedFormat("codec params are not a JSON object")
    spec = CodecSpec(codec.name, **codec.spec_fields(params))  # validates the values
    author = metadata["author"]
    if not (_HEX_ADDRESS.fullmatch(author) and is_checksum_address(author)):
        raise UnsupportedFormat(f"author {author[:64]!r} is not an EIP-55 checksummed address")
    round_ = _parse_uint(metadata, "round", low=1)
    nonce = _parse_uint(metadata, "nonce", low=0)
    return DeltaHeader(fmt, metadata["model_id"], base_hash, spec, author, round_, nonce)


def _parse_uint(metadata: Mapping[str, str], key: str, low: int) -> int:
    text = metadata[key]
    if not _DECIMAL.fullmatch(text) or not low <= int(text) < _UINT64_LIMIT:
        raise UnsupportedFormat(f"{key} {text[:32]!r} is not a decimal integer in [{low}, 2**64)")
    return int(text)


def check_expected(
    header: DeltaHeader,
    *,
    model_id: str | None = None,
    base_hash: bytes | None = None,
    author: str | None = None,
    round_: int | None = None,
) -> None:
    """Raise ``HeaderMismatch`` naming the first field that differs from what is expected.

    None means "not checked". Addresses compare case-insensitively.
    """
    expected = {
        "model_id": model_id,
        "base_hash": None if base_hash is None else bytes(base_hash).hex(),
        "author": author,
        "round": round_,
    }
    actual = {"model_id": header.model_id, "base_hash": header.base_hash.hex(), "author": header.author,
              "round": header.round}
    for name, want in expected.items():
        got = actual[name]
        if want is None or got == want or (name == "author" and str(got).lower() == str(want).lower()):
            continue
        raise HeaderMismatch(f"{name}: the header says {_shown(got)}, {_shown(want)} was expected")


def _shown(value: object) -> str:
    """A header value in a message: ``repr``, cut short (the header is untrusted)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
