"""The only module that reaches into py-libp2p internals.  Made for libp2p == 0.8.1.

What is changed, and why (figures in NOTES-dependencies.md and bench/results/transport.json):

* Yamux frames of 1 MiB instead of 64 KiB (``yamux.MAX_MESSAGE_SIZE``): every 64 KiB
  frame was a few bytes over Noise's 65,519-byte plaintext limit, so it became two Noise
  messages, and each frame cost one trip through the per-message Python/trio machinery.
  Receivers of any py-libp2p version accept data frames up to 16 MiB.
* A 16 MiB initial stream window (``yamux.DEFAULT_WINDOW_SIZE``) and window credit
  released in half-window batches (``PY_YAMUX_RELEASE_ON_READ=0``) instead of one window
  update per frame read.  The initial window is an assumption both ends make about each
  other, so every host of a network must run with the same setting: GossipNetwork always
  applies it.
* Noise: the chunks of one large write are encrypted back to back and handed to the
  socket in one ``write`` (same bytes on the wire, one syscall and one trio checkpoint
  instead of one per 64 KiB).  On the receiving side, the transport reader takes up to
  256 KiB from the socket at a time and cuts Noise messages out of its own buffer:
  py-libp2p reads each message's 2-byte length and then its body with separate socket
  reads, about six trio reads per 64 KiB message, which made the receiver's single
  thread the bottleneck.  Only the post-handshake transport reader is buffered: the
  handshake reader must not read past the handshake.
* GossipSub sequence numbers seeded from ``time.time_ns()`` instead of ``time.time()``:
  message ids are (sender, seqno), so a peer that published faster than once a second and
  restarted would reuse ids, and every peer's seen-cache silently dropped its next
  announcements for about two minutes.

``check_library()`` verifies that the internals patched here still look as expected;
tests/gossip/test_gossip_tuning.py runs it, so a libp2p upgrade that moves them fails
loudly instead of silently losing the tuning.
"""

from __future__ import annotations

import inspect
import os
import time
from importlib.metadata import version
from typing import Any

__all__ = [
    "LIBP2P_VERSION",
    "TUNED_WINDOW",
    "TUNED_YAMUX_FRAME",
    "apply_transport_tuning",
    "check_library",
    "seed_pubsub_seqno",
    "transport_tuning_applied",
]

LIBP2P_VERSION = "0.8.1"
TUNED_YAMUX_FRAME = 1024 * 1024
TUNED_WINDOW = 16 * 1024 * 1024
NOISE_RECV_BLOCK = 256 * 1024
_applied = False


def check_library() -> list[str]:
    """Return what no longer matches the internals this module patches (empty = fine)."""
    from libp2p.pubsub import pubsub
    from libp2p.security.noise import io as noise_io
    from libp2p.stream_muxer.yamux import yamux

    problems: list[str] = []
    if version("libp2p") != LIBP2P_VERSION:
        problems.append(f"libp2p is {version('libp2p')}, tuning was made for {LIBP2P_VERSION}")
    for name in ("MAX_MESSAGE_SIZE", "DEFAULT_WINDOW_SIZE", "MAX_WINDOW_SIZE", "HEADER_SIZE"):
        if not isinstance(getattr(yamux, name, None), int):
            problems.append(f"yamux.{name} is gone")
    if getattr(yamux, "MAX_WINDOW_SIZE", 0) < TUNED_WINDOW:
        problems.append("yamux.MAX_WINDOW_SIZE would reject our frames")
    write_src = inspect.getsource(yamux.YamuxStream.write)
    if "MAX_MESSAGE_SIZE - HEADER_SIZE" not in write_src:
        problems.append("YamuxStream.write no longer sizes frames from MAX_MESSAGE_SIZE")
    if "DEFAULT_WINDOW_SIZE" not in inspect.getsource(yamux.YamuxStream.__init__):
        problems.append("YamuxStream.__init__ no longer reads DEFAULT_WINDOW_SIZE")
    if '"RELEASE_ON_READ"' not in inspect.getsource(yamux._yamux_release_on_read):
        problems.append("yamux no longer reads PY_YAMUX_RELEASE_ON_READ")
    base = noise_io.BaseNoiseMsgReadWriter
    if not hasattr(base, "write_msg") or not hasattr(base, "encrypt") and not hasattr(
        noise_io.NoiseTransportReadWriter, "encrypt"
    ):
        problems.append("noise BaseNoiseMsgReadWriter.write_msg/encrypt changed")
    if getattr(noise_io, "MAX_PLAINTEXT_LENGTH", None) != 65535 - 16:
        problems.append("noise MAX_PLAINTEXT_LENGTH changed")
    write_msg_src = inspect.getsource(base.write_msg)
    if "read_writer.write_msg" not in write_msg_src or "prefix_encoded" not in write_msg_src:
        problems.append("noise write_msg structure changed")
    read_msg_src = inspect.getsource(base.read_msg)
    if "self.read_writer.read_msg()" not in read_msg_src or "self.decrypt(" not in read_msg_src:
        problems.append("noise read_msg structure changed")
    if getattr(noise_io.NoisePacketReadWriter, "size_len_bytes", None) != 2:
        problems.append("noise packets no longer have a 2-byte length prefix")
    if vars(noise_io.NoiseTransportReadWriter).get("read_msg") not in (
        None,
        _noise_transport_read_msg,
    ):
        problems.append("NoiseTransportReadWriter now has its own read_msg")
    init_src = inspect.getsource(pubsub.Pubsub.__init__)
    if "self.counter = int(time.time())" not in init_src:
        problems.append("Pubsub no longer seeds its counter from time.time()")
    if "self.counter" not in inspect.getsource(pubsub.Pubsub._next_seqno):
        problems.append("Pubsub._next_seqno no longer uses self.counter")
    return problems


async def _noise_write_msg(self: Any, msg: bytes, prefix_encoded: bool = False) -> None:
    """BaseNoiseMsgReadWriter.write_msg with one socket write for all chunks."""
    from libp2p.security.noise import io as noise_io

    limit = noise_io.MAX_PLAINTEXT_LENGTH
    if len(msg) <= limit:
        data = self.encrypt(msg)
        if prefix_encoded:
            data = self.prefix + data
        await self.read_writer.write_msg(data)
        return
    view = memoryview(msg)
    frames: list[bytes] = []
    for start in range(0, len(msg), limit):
        encrypted = self.encrypt(bytes(view[start : start + limit]))
        if prefix_encoded and start == 0:
            encrypted = self.prefix + encrypted
        frames.append(len(encrypted).to_bytes(noise_io.SIZE_NOISE_MESSAGE_LEN, "big"))
        frames.append(encrypted)
    await self.read_writer.read_write_closer.write(b"".join(frames))


async def _fill(raw: Any, buf: bytearray, end: int) -> None:
    """Read from ``raw`` into ``buf`` until it holds at least ``end`` bytes."""
    from libp2p.io.exceptions import IncompleteReadError

    while len(buf) < end:
        data = await raw.read(max(NOISE_RECV_BLOCK, end - len(buf)))
        if not data:
            raise IncompleteReadError(
                f"Connection closed during read operation: expected {end} bytes but "
                f"received {len(buf)} bytes",
                expected_bytes=end,
                received_bytes=len(buf),
            )
        buf.extend(data)


async def _noise_transport_read_msg(self: Any, prefix_encoded: bool = False) -> bytes:
    """NoiseTransportReadWriter.read_msg reading the socket in blocks, not per message."""
    buf: bytearray | None = self.__dict__.get("_medgossip_buf")
    if buf is None:
        buf = self._medgossip_buf = bytearray()
    raw = self.read_writer.read_write_closer
    if len(buf) < 2:
        await _fill(raw, buf, 2)
    end = 2 + int.from_bytes(buf[:2], "big")
    if len(buf) < end:
        await _fill(raw, buf, end)
    message = bytes(buf[2 + (len(self.prefix) if prefix_encoded else 0) : end])
    del buf[:end]
    return self.decrypt(message)


def apply_transport_tuning() -> None:
    """Apply the Yamux/Noise tuning to this process (idempotent).

    Raises RuntimeError if the library no longer matches (see check_library()).
    """
    global _applied
    if _applied:
        return
    problems = check_library()
    if problems:
        raise RuntimeError("py-libp2p internals changed: " + "; ".join(problems))
    from libp2p.security.noise import io as noise_io
    from libp2p.stream_muxer.yamux import yamux

    yamux.MAX_MESSAGE_SIZE = TUNED_YAMUX_FRAME
    yamux.DEFAULT_WINDOW_SIZE = TUNED_WINDOW
    os.environ["PY_YAMUX_RELEASE_ON_READ"] = "0"
    noise_io.BaseNoiseMsgReadWriter.write_msg = _noise_write_msg  # type: ignore[method-assign]
    noise_io.NoiseTransportReadWriter.read_msg = _noise_transport_read_msg  # type: ignore[method-assign]
    _applied = True


def transport_tuning_applied() -> bool:
    return _applied


def seed_pubsub_seqno(pubsub: Any) -> None:
    """Seed a fresh Pubsub's sequence counter from the nanosecond clock (restart bug)."""
    pubsub.counter = time.time_ns()
