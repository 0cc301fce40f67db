"""Announcements and their wire format.

An announcement says "peer P published delta H (size, codec) for round R".  It rides
GossipSub, signed by libp2p (strict signing), so the *sender* is the verified ``from``
peer of the pubsub message; the topic validator also requires ``peer_id`` inside the
announcement to equal that sender.

Wire format, version 1 (big-endian, hand-written; never pickle)::

    magic   4 bytes  b"MGA1"  (format name + version; a new version gets a new magic)
    peer    u8 length + raw peer ID bytes (<= 64)
    round   u64
    hash    32 bytes (keccak256 of the payload)
    size    u64
    codec   u8 length + ASCII
    n_meta  u8, then n_meta times: key (u8 length + UTF-8), value (u16 length + UTF-8)
    n_addr  u8 (<= 8), then n_addr times: u8 length + ASCII multiaddr where the sender
            listens (filled in by GossipNetwork.announce, so that peers that are not
            neighbours can dial the holder to fetch)

Decoding is strict: unknown magic, truncation, trailing bytes, bad UTF-8, duplicate keys
or anything over the size limit raise AnnouncementError.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gossip.errors import AnnouncementError, AnnouncementTooLarge, InvalidIdentity
from gossip.identity import peer_id_from_bytes, peer_id_to_bytes

__all__ = [
    "ANNOUNCEMENT_MAGIC",
    "DEFAULT_MAX_ANNOUNCEMENT",
    "Announcement",
    "ReceivedAnnouncement",
    "decode_announcement",
    "decode_announcement_with_addrs",
    "encode_announcement",
]

ANNOUNCEMENT_MAGIC = b"MGA1"
DEFAULT_MAX_ANNOUNCEMENT = 4096
HASH_LENGTH = 32
_MAX_PEER_ID = 64
_MAX_CODEC = 32
_MAX_META_ENTRIES = 32
_MAX_META_KEY = 64
_MAX_META_VALUE = 1024
_MAX_ADDRS = 8
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")


@dataclass(frozen=True)
class Announcement:
    """A peer's claim that it has published (and serves) the payload ``delta_hash``."""

    peer_id: str
    round: int
    delta_hash: bytes
    size: int
    codec: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Freeze the mapping so the dataclass is really immutable (and hashable by id).
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        if not isinstance(self.delta_hash, bytes) or len(self.delta_hash) != HASH_LENGTH:
            raise AnnouncementError("delta_hash must be 32 bytes")
        if not 0 <= self.round < 2**64 or not 0 <= self.size < 2**64:
            raise AnnouncementError("round and size must fit in an unsigned 64-bit integer")
        if not self.codec.isascii() or not 0 < len(self.codec) <= _MAX_CODEC:
            raise AnnouncementError(f"codec must be 1..{_MAX_CODEC} ASCII characters")
        if len(self.metadata) > _MAX_META_ENTRIES:
            raise AnnouncementError(f"at most {_MAX_META_ENTRIES} metadata entries")
        for key, value in self.metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise AnnouncementError("metadata keys and values must be str")
            if not 0 < len(key.encode()) <= _MAX_META_KEY:
                raise AnnouncementError(f"metadata key must be 1..{_MAX_META_KEY} bytes")
            if len(value.encode()) > _MAX_META_VALUE:
                raise AnnouncementError(f"metadata value over {_MAX_META_VALUE} bytes")


@dataclass(frozen=True)
class ReceivedAnnouncement:
    """An announcement as delivered by GossipNetwork.announcements().

    ``sender`` is the peer whose libp2p signature covered the message (verified); the
    validator guarantees ``announcement.peer_id == sender``.  ``forwarder`` is the
    neighbour that relayed it to us.  Field access is passed through, so
    ``received.delta_hash`` works like ``received.announcement.delta_hash``.
    """

    announcement: Announcement
    sender: str
    forwarder: str
    received_at: float

    @property
    def peer_id(self) -> str:
        return self.announcement.peer_id

    @property
    def round(self) -> int:
        return self.announcement.round

    @property
    def delta_hash(self) -> bytes:
        return self.announcement.delta_hash

    @property
    def size(self) -> int:
        return self.announcement.size

    @property
    def codec(self) -> str:
        return self.announcement.codec

    @property
    def metadata(self) -> Mapping[str, str]:
        return self.announcement.metadata


def encode_announcement(
    ann: Announcement,
    max_size: int = DEFAULT_MAX_ANNOUNCEMENT,
    addrs: tuple[str, ...] | list[str] = (),
) -> bytes:
    """Encode ``ann`` (+ the sender's listen ``addrs``); AnnouncementTooLarge over max_size."""
    try:
        peer = peer_id_to_bytes(ann.peer_id)
    except InvalidIdentity as exc:
        raise AnnouncementError(f"bad peer ID in announcement: {exc}") from exc
    if len(peer) > _MAX_PEER_ID:
        raise AnnouncementError("peer ID too long")
    parts = [
        ANNOUNCEMENT_MAGIC,
        bytes([len(peer)]),
        peer,
        _U64.pack(ann.round),
        ann.delta_hash,
        _U64.pack(ann.size),
        bytes([len(ann.codec)]),
        ann.codec.encode("ascii"),
        bytes([len(ann.metadata)]),
    ]
    for key, value in ann.metadata.items():
        key_bytes, value_bytes = key.encode(), value.encode()
        parts += [bytes([len(key_bytes)]), key_bytes, _U16.pack(len(value_bytes)), value_bytes]
    addr_bytes = [a.encode("ascii") for a in addrs if a.isascii() and len(a) <= 255]
    parts.append(bytes([min(len(addr_bytes), _MAX_ADDRS)]))
    for raw in addr_bytes[:_MAX_ADDRS]:
        parts += [bytes([len(raw)]), raw]
    encoded = b"".join(parts)
    if len(encoded) > max_size:
        raise AnnouncementTooLarge(f"announcement is {len(encoded)} bytes, limit {max_size}")
    return encoded


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise AnnouncementError("truncated announcement")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def done(self) -> bool:
        return self._pos == len(self._data)


def decode_announcement(data: bytes, max_size: int = DEFAULT_MAX_ANNOUNCEMENT) -> Announcement:
    """Decode strictly; raise AnnouncementError (or AnnouncementTooLarge) on any defect."""
    return decode_announcement_with_addrs(data, max_size)[0]


def decode_announcement_with_addrs(
    data: bytes, max_size: int = DEFAULT_MAX_ANNOUNCEMENT
) -> tuple[Announcement, tuple[str, ...]]:
    """Decode an announcement and the sender's listen addresses carried with it."""
    if len(data) > max_size:
        raise AnnouncementTooLarge(f"announcement is {len(data)} bytes, limit {max_size}")
    reader = _Reader(data)
    if reader.take(len(ANNOUNCEMENT_MAGIC)) != ANNOUNCEMENT_MAGIC:
        raise AnnouncementError("unknown announcement format or version")
    peer_len = reader.u8()
    if not 0 < peer_len <= _MAX_PEER_ID:
        raise AnnouncementError("bad peer ID length")
    peer = reader.take(peer_len)
    round_ = reader.u64()
    delta_hash = reader.take(HASH_LENGTH)
    size = reader.u64()
    try:
        codec = reader.take(reader.u8()).decode("ascii")
        metadata: dict[str, str] = {}
        for _ in range(reader.u8()):
            key = reader.take(reader.u8()).decode("utf-8")
            value = reader.take(reader.u16()).decode("utf-8")
            if key in metadata:
                raise AnnouncementError("duplicate metadata key")
            metadata[key] = value
        n_addrs = reader.u8()
        if n_addrs > _MAX_ADDRS:
            raise AnnouncementError("too many addresses")
        addrs = tuple(reader.take(reader.u8()).decode("ascii") for _ in range(n_addrs))
    except UnicodeDecodeError as exc:
        raise AnnouncementError("announcement text is not valid UTF-8/ASCII") from exc
    if not reader.done():
        raise AnnouncementError("trailing bytes after announcement")
    ann = Announcement(
        peer_id=peer_id_from_bytes(peer),
        round=round_,
        delta_hash=delta_hash,
        size=size,
        codec=codec,
        metadata=metadata,
    )
    return ann, addrs


