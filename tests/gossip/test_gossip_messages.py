"""Announcement wire format: compact, versioned, strict."""

from __future__ import annotations

import pytest

from gossip.errors import AnnouncementError, AnnouncementTooLarge
from gossip.identity import generate_secret, peer_id_from_secret
from gossip.messages import Announcement, decode_announcement, encode_announcement


def _announcement(**changes: object) -> Announcement:
    fields: dict[str, object] = dict(
        peer_id=peer_id_from_secret(generate_secret()),
        round=7,
        delta_hash=bytes(range(32)),
        size=123_456,
        codec="int8",
        metadata={"base": "ab" * 32, "note": "é"},
    )
    fields.update(changes)
    return Announcement(**fields)  # type: ignore[arg-type]


def test_round_trip_is_exact_and_compact() -> None:
    ann = _announcement()
    data = encode_announcement(ann)
    assert decode_announcement(data) == ann
    assert len(data) < 250


def test_every_truncation_and_extension_is_rejected() -> None:
    data = encode_announcement(_announcement())
    for cut in range(len(data)):
        with pytest.raises(AnnouncementError):
            decode_announcement(data[:cut])
    with pytest.raises(AnnouncementError):
        decode_announcement(data + b"\x00")
    with pytest.raises(AnnouncementError):
        decode_announcement(b"MGA2" + data[4:])


def test_size_limits() -> None:
    big = _announcement(metadata={f"k{i}": "v" * 1000 for i in range(8)})
    with pytest.raises(AnnouncementTooLarge):
        encode_announcement(big, max_size=4096)
    with pytest.raises(AnnouncementTooLarge):
        decode_announcement(b"MGA1" + bytes(5000))
    with pytest.raises(AnnouncementError):
        _announcement(delta_hash=b"short")
    with pytest.raises(AnnouncementError):
        _announcement(metadata={"k": "v" * 5000})
