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


def test_seqno_seed_is_nanoseconds() -> None:
    class FakePubsub:
        counter = 0

    pubsub = FakePubsub()
    _tuning.seed_pubsub_seqno(pubsub)
    assert pubsub.counter > 10**18
