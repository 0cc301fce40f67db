"""The libp2p internals gossip/_tuning.py patches must still be where it expects them."""

from __future__ import annotations

from gossip import _tuning


def test_library_internals_match_the_tuning() -> None:
    assert _tuning.check_library() == []


def test_tuning_takes_effect() -> None:
    from libp2p.security.noise import io as noise_io
    from libp2p.stream_muxer.yamux import yamux

    _tuning.apply_transport_tuning()
    assert yamux.MAX_MESSAGE_SIZE == _tuning.TUNED_YAMUX_FRAME
    assert yamux.DEFAULT_WINDOW_SIZE == _tuning.TUNED_WINDOW
    assert yamux._yamux_release_on_read() is False
    assert noise_io.BaseNoiseMsgReadWriter.write_msg is _tuning._noise_write_msg
    assert noise_io.NoiseTransportReadWriter.read_msg is _tuning._noise_transport_read_msg


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
    import pytest
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
