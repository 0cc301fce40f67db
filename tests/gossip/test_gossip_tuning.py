"""The libp2p internals gossip/_tuning.py patches must still be where it expects them."""

from __future__ import annotations

import pytest

from gossip import _tuning
from gossip.errors import UnsupportedLibp2p


def test_library_internals_match_the_tuning() -> None:
    assert _tuning.check_library() == []


def test_a_changed_internal_is_reported_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from libp2p.stream_muxer.yamux import yamux

    async def write(self: object, data: bytes) -> None:  # a "new release" of write
        return None

    monkeypatch.setattr(yamux.YamuxStream, "write", write)
    monkeypatch.setattr(_tuning, "_library_problems", lambda: tuple(_tuning.check_library()))
    problems = _tuning.check_library()
    assert any(p.startswith("libp2p.stream_muxer.yamux.yamux:YamuxStream.write changed")
               for p in problems)
    with pytest.raises(UnsupportedLibp2p, match="YamuxStream.write changed"):
        _tuning.require_library()


def test_every_fingerprint_names_a_real_internal() -> None:
    for target in _tuning._FINGERPRINTS:
        assert callable(_tuning._resolve(target)), target


def test_seqno_seed_is_nanoseconds() -> None:
    class FakePubsub:
        counter = 0

    pubsub = FakePubsub()
    _tuning.seed_pubsub_seqno(pubsub)
    assert pubsub.counter > 10**18


class _ChoppedSocket:
    """A raw connection that hands out its bytes in the given piece sizes, then EOF."""

    def __init__(self, data: bytes, pieces: list[int]) -> None:
        self.data, self.pieces = data, pieces

    async def read(self, n: int) -> bytes:
        size = min(n, self.pieces.pop(0) if self.pieces else n)
        out, self.data = self.data[:size], self.data[size:]
        return out


class _FakeNoiseReader:
    prefix = b"\x00" * 32

    def __init__(self, raw: _ChoppedSocket) -> None:
        self.read_writer = type("RW", (), {"read_write_closer": raw})()

    def decrypt(self, data: bytes) -> bytes:
        return data[::-1]  # stands in for ChaCha20-Poly1305: any bijection will do


def _noise_packets(messages: list[bytes]) -> bytes:
    return b"".join(len(m).to_bytes(2, "big") + m for m in messages)


async def test_buffered_noise_reader_cuts_messages_at_any_socket_boundary() -> None:
    import random

    rng = random.Random(5)
    messages = [rng.randbytes(rng.choice([0, 1, 2, 3, 1000, 65535])) for _ in range(60)]
    wire = _noise_packets(messages)
    for pieces in ([1] * 10 + [len(wire)], [rng.randrange(1, 70_000) for _ in range(400)], []):
        reader = _FakeNoiseReader(_ChoppedSocket(wire, list(pieces)))
        got = [await _tuning._noise_transport_read_msg(reader) for _ in messages]
        assert got == [m[::-1] for m in messages]


async def test_buffered_noise_reader_reports_a_connection_closed_mid_message() -> None:
    from libp2p.io.exceptions import IncompleteReadError

    wire = _noise_packets([b"a" * 100, b"b" * 100])[:-1]
    reader = _FakeNoiseReader(_ChoppedSocket(wire, [7, 50]))
    assert await _tuning._noise_transport_read_msg(reader) == b"a" * 100
    with pytest.raises(IncompleteReadError):
        await _tuning._noise_transport_read_msg(reader)


async def test_buffered_noise_reader_strips_the_prefix_when_asked() -> None:
    body = b"\x00" * 32 + b"payload"
    reader = _FakeNoiseReader(_ChoppedSocket(_noise_packets([body]), []))
    assert await _tuning._noise_transport_read_msg(reader, prefix_encoded=True) == b"daolyap"
