"""The only module that reaches into py-libp2p internals.  Made for libp2p == 0.8.1.

Every place where medgossip depends on py-libp2p code that is not public API is here, and
each is listed in ``_FINGERPRINTS`` with a hash of the library source it relies on:
``check_library()`` compares them, ``require_library()`` refuses to build a host when they
differ, and tests/gossip/test_gossip_tuning.py runs the check, so a libp2p upgrade that
moves them fails loudly instead of silently losing the tuning or the armour.

Transport tuning, per host and negotiated per connection (never process-wide):

* ``TunedYamux`` is offered under its own muxer protocol id, ``/medgossip-yamux/1.0.0``,
  before the standard ``/yamux/1.0.0``.  Its streams assume a 16 MiB initial window at
  both ends, which is only true when both ends run it; the distinct id makes that a
  negotiated fact.  Two tuned hosts pick it; a tuned host and a standard peer (another
  implementation, or a host built with ``tuned=False``) fall back to ``/yamux/1.0.0`` with
  py-libp2p's own classes and windows.  Its streams send 1 MiB frames instead of 64 KiB
  (every 64 KiB frame was a few bytes over Noise's 65,519-byte plaintext limit, so it
  became two Noise messages) and release window credit in half-window batches instead of
  one window update per read.
* ``TunedNoiseTransport``: the chunks of one large write are encrypted back to back and
  handed to the socket in one ``write`` (same bytes on the wire, one syscall and one trio
  checkpoint instead of one per 64 KiB); the post-handshake reader takes up to 256 KiB
  from the socket at a time and cuts Noise messages out of its own buffer (py-libp2p
  reads each message's 2-byte length and body with separate socket reads).  The bytes
  on the wire are unchanged, so this needs no negotiation; it is still per host.
* ``seed_pubsub_seqno``: GossipSub message ids are (sender, seqno) and py-libp2p seeds
  seqno from ``time.time()``; a peer that published faster than once a second and
  restarted reused ids, and every peer's seen-cache dropped its announcements for about
  two minutes.  Seeded from ``time.time_ns()`` instead.

Armour (used by gossip/network.py and gossip/guards.py through the functions here):

* ``guard_push_msg`` wraps ``Pubsub.push_msg`` on one Pubsub instance: a malformed message
  that raised out of it stopped the Pubsub service.
* ``stream_handlers`` is the host's multistream-select table (protocol -> handler) that
  guards.py rewrites, so each inbound stream is checked before protocol code sees it.
* ``wrap_connection_gate`` replaces the swarm's connection gate (asked about every
  address it dials) with a wrapper: addresses.py uses it so a host never dials itself.

Figures: NOTES-dependencies.md and bench/results/transport.json.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import struct
import time
from collections.abc import Callable, MutableMapping
from functools import cache
from importlib.metadata import version
from typing import Any

import trio
from libp2p.io.exceptions import IncompleteReadError
from libp2p.security.noise import io as noise_io
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.stream_muxer.yamux import yamux

from gossip.errors import UnsupportedLibp2p

__all__ = [
    "LIBP2P_VERSION",
    "STANDARD_MUXER_PROTOCOL",
    "TUNED_MUXER_PROTOCOL",
    "TUNED_WINDOW",
    "TUNED_YAMUX_FRAME",
    "TunedNoiseTransport",
    "TunedYamux",
    "check_library",
    "guard_push_msg",
    "muxer_options",
    "require_library",
    "seed_pubsub_seqno",
    "stream_handlers",
    "wrap_connection_gate",
]

LIBP2P_VERSION = "0.8.1"
STANDARD_MUXER_PROTOCOL = yamux.PROTOCOL_ID
TUNED_MUXER_PROTOCOL = "/medgossip-yamux/1.0.0"
TUNED_YAMUX_FRAME = 1024 * 1024
TUNED_WINDOW = 16 * 1024 * 1024
NOISE_RECV_BLOCK = 256 * 1024
WINDOW_WAIT = 5.0
"""seconds a writer waits for window credit, as YamuxStream.write does."""

_FINGERPRINTS: dict[str, tuple[str, str]] = {
    # target (module:qualname) -> (sha256 of its source, first 16 hex digits; what we rely on)
    "libp2p.stream_muxer.yamux.yamux:YamuxStream.__init__": (
        "ab24c0709285d573", "sets the window fields TunedYamux overrides per stream"),
    "libp2p.stream_muxer.yamux.yamux:YamuxStream.write": (
        "d87f74dfb53ab194", "TunedYamuxStream.write is this method with 1 MiB frames"),
    "libp2p.stream_muxer.yamux.yamux:YamuxStream.read": (
        "ca585f2199fd4e83", "every read reports bytes_read to the window-update hook"),
    "libp2p.stream_muxer.yamux.yamux:YamuxStream._auto_tune_and_send_window_update": (
        "6ebcbd822fe7f996", "the window-update hook TunedYamuxStream replaces"),
    "libp2p.stream_muxer.yamux.yamux:Yamux.__init__": (
        "3b11a2a71ca444ca", "creates the streams table TunedYamux replaces"),
    "libp2p.stream_muxer.yamux.yamux:Yamux.open_stream": (
        "f3e0ef79ec21d0cb", "stores each new outbound stream in self.streams at once"),
    "libp2p.stream_muxer.yamux.yamux:Yamux.handle_incoming": (
        "ad15ff6943feac20", "stores each new inbound stream in self.streams at once"),
    "libp2p.stream_muxer.muxer_multistream:MuxerMultistream.new_conn": (
        "91d21f40f524ad99", "builds a non-/yamux/1.0.0 muxer as transport_class(conn, peer)"),
    "libp2p.security.noise.io:BaseNoiseMsgReadWriter.write_msg": (
        "00818920318f86aa", "replaced by _noise_write_msg (same bytes, one socket write)"),
    "libp2p.security.noise.io:BaseNoiseMsgReadWriter.read_msg": (
        "b2fa218c135c82c0", "replaced by _noise_transport_read_msg (buffered)"),
    "libp2p.security.noise.patterns:PatternXX.handshake_inbound": (
        "d2f509f2c5b65643", "the session's conn is a NoiseTransportReadWriter"),
    "libp2p.security.noise.patterns:PatternXX.handshake_outbound": (
        "8d2a997bd6b0bbd6", "the session's conn is a NoiseTransportReadWriter"),
    "libp2p.security.noise.transport:Transport.secure_inbound": (
        "4c447c4ea56267b1", "returns the handshake's session unchanged"),
    "libp2p.security.noise.transport:Transport.secure_outbound": (
        "f5be8851b898cbf1", "returns the handshake's session unchanged"),
    "libp2p.pubsub.pubsub:Pubsub.__init__": (
        "fc7e7f95ffc4b135", "seeds self.counter from time.time()"),
    "libp2p.pubsub.pubsub:Pubsub._next_seqno": (
        "518c47aeb8ac58f8", "message seqnos come from self.counter"),
    "libp2p.pubsub.pubsub:Pubsub.continuously_read_stream": (
        "ac0c4ad87ca39288", "calls self.push_msg, so a per-instance wrapper sees every message"),
    "libp2p.pubsub.pubsub:Pubsub.push_msg": (
        "1531483ab4d77674", "guard_push_msg wraps it: push_msg(forwarder, msg) on the instance"),
    "libp2p.pubsub.pubsub:Pubsub.publish": (
        "5e875e00e471afb8", "calls self.push_msg for our own messages"),
    "libp2p.host.basic_host:BasicHost.set_stream_handler": (
        "3c1f7a98f927c6b8", "stores handlers in host.multiselect.handlers"),
    "libp2p.protocol_muxer.multiselect:Multiselect.negotiate": (
        "e870e3fe41c87e3c", "looks handlers up in self.handlers for each inbound stream"),
    "libp2p.network.swarm:Swarm.dial_peer": (
        "da3b538ccaeaeaa6", "asks self.connection_gate.is_allowed(addr) for every address"),
}


def _resolve(target: str) -> Any:
    module_name, qualname = target.split(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def fingerprint(obj: Any) -> str:
    """First 16 hex digits of the sha256 of ``obj``'s source."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def check_library() -> list[str]:
    """Return what no longer matches the internals this module relies on (empty = fine)."""
    problems: list[str] = []
    if version("libp2p") != LIBP2P_VERSION:
        problems.append(f"libp2p is {version('libp2p')}, gossip/_tuning.py was made for "
                        f"{LIBP2P_VERSION}")
    for target, (expected, why) in _FINGERPRINTS.items():
        try:
            found = fingerprint(_resolve(target))
        except (AttributeError, ImportError, OSError, TypeError):
            problems.append(f"{target} is gone ({why})")
            continue
        if found != expected:
            problems.append(f"{target} changed, fingerprint {found} ({why})")
    if yamux.MAX_WINDOW_SIZE < TUNED_WINDOW:
        problems.append("yamux.MAX_WINDOW_SIZE is below TUNED_WINDOW: frames would be refused")
    if getattr(noise_io, "MAX_PLAINTEXT_LENGTH", None) != 65535 - 16:
        problems.append("noise MAX_PLAINTEXT_LENGTH changed")
    if getattr(noise_io.NoisePacketReadWriter, "size_len_bytes", None) != 2:
        problems.append("noise packets no longer have a 2-byte length prefix")
    return problems


@cache
def _library_problems() -> tuple[str, ...]:
    return tuple(check_library())


def require_library() -> None:
    """Refuse to build a host on a py-libp2p whose internals no longer match this module.

    Raises UnsupportedLibp2p naming every mismatch.
    """
    problems = _library_problems()
    if problems:
        raise UnsupportedLibp2p(
            "py-libp2p internals changed (install libp2p=="
            f"{LIBP2P_VERSION} or review gossip/_tuning.py): " + "; ".join(problems)
        )


# ---------------------------------------------------------------- Yamux
class TunedYamuxStream(yamux.YamuxStream):
    """A Yamux stream of a /medgossip-yamux/1.0.0 connection: 16 MiB window, 1 MiB frames."""

    async def write(self, data: bytes) -> None:
        """YamuxStream.write (0.8.1) with TUNED_YAMUX_FRAME instead of MAX_MESSAGE_SIZE."""
        if self.send_closed:
            raise MuxedStreamError("Stream is closed for sending")
        total, sent = len(data), 0
        while sent < total:
            frame: bytes | None = None
            while frame is None:
                async with self.rw_lock.write_lock():
                    if self.send_closed:
                        raise MuxedStreamError("Stream is closed for sending")
                    async with self.window_lock:
                        if self.closed:
                            raise MuxedStreamError("Stream is closed")
                        if self.send_window > 0:
                            size = min(self.send_window, TUNED_YAMUX_FRAME - yamux.HEADER_SIZE,
                                       total - sent)
                            self.send_window -= size
                            header = struct.pack(yamux.YAMUX_HEADER_FORMAT, 0, yamux.TYPE_DATA,
                                                 0, self.stream_id, size)
                            frame = header + data[sent : sent + size]
                if frame is None:
                    await self._wait_for_window()
            await self.conn._write_frame(frame)
            sent += len(frame) - yamux.HEADER_SIZE

    async def _wait_for_window(self) -> None:
        with trio.move_on_after(WINDOW_WAIT):
            while True:
                async with self.window_lock:
                    if self.send_window > 0 or self.closed:
                        return
                await trio.sleep(0.01)
        raise MuxedStreamError(f"Timed out waiting for window update after {WINDOW_WAIT} seconds.")

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        """Give the sender back the credit read so far, in half-window batches.

        The window starts at its maximum, so there is nothing to auto-tune; one update per
        8 MiB read replaces one per 64 KiB.  The sender blocks only once 16 MiB are
        unacknowledged, by then at least 8 MiB have been read or are waiting to be read.
        """
        async with self.window_lock:
            self._pending_recv_release += bytes_read
            if self._pending_recv_release < TUNED_WINDOW // 2:
                return
            increment, self._pending_recv_release = self._pending_recv_release, 0
            self.recv_window += increment
        await self.send_window_update(increment)


class _TunedStreamTable(dict[int, yamux.YamuxStream]):
    """``Yamux.streams`` of a tuned connection: every stream stored in it becomes tuned.

    Yamux creates plain YamuxStreams (by module-level name) in open_stream and
    handle_incoming and stores each here before a byte of it moves; this is the one hook
    that turns them into TunedYamuxStreams without patching the module.
    """

    def __setitem__(self, stream_id: int, stream: yamux.YamuxStream) -> None:
        if type(stream) is yamux.YamuxStream:
            stream.__class__ = TunedYamuxStream
            stream.send_window = stream.recv_window = TUNED_WINDOW
            stream.target_recv_window = TUNED_WINDOW
        super().__setitem__(stream_id, stream)


class TunedYamux(yamux.Yamux):
    """Yamux whose streams are TunedYamuxStreams; offered only as TUNED_MUXER_PROTOCOL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streams = _TunedStreamTable()


def muxer_options(tuned: bool) -> dict[Any, Any]:
    """The host's muxers in order of preference: tuned first, standard Yamux always."""
    from libp2p.custom_types import TProtocol

    standard = {TProtocol(STANDARD_MUXER_PROTOCOL): yamux.Yamux}
    if not tuned:
        return standard
    return {TProtocol(TUNED_MUXER_PROTOCOL): TunedYamux, **standard}


# ---------------------------------------------------------------- Noise
async def _noise_write_msg(self: Any, msg: bytes, prefix_encoded: bool = False) -> None:
    """BaseNoiseMsgReadWriter.write_msg with one socket write for all chunks."""
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


class TunedNoiseReadWriter(noise_io.NoiseTransportReadWriter):
    """The post-handshake Noise reader/writer of a tuned host (wire-identical)."""

    write_msg = _noise_write_msg  # type: ignore[assignment]
    read_msg = _noise_transport_read_msg  # type: ignore[assignment]


def _tune_session(session: Any) -> Any:
    """Only the post-handshake reader is buffered: the handshake must not read past itself."""
    if type(session.conn) is noise_io.NoiseTransportReadWriter:
        session.conn.__class__ = TunedNoiseReadWriter
    return session


class TunedNoiseTransport(NoiseTransport):
    """Noise whose sessions use TunedNoiseReadWriter."""

    async def secure_inbound(self, conn: Any) -> Any:
        return _tune_session(await super().secure_inbound(conn))

    async def secure_outbound(self, conn: Any, peer_id: Any) -> Any:
        return _tune_session(await super().secure_outbound(conn, peer_id))


# ---------------------------------------------------------------- pubsub and handlers
def seed_pubsub_seqno(pubsub: Any) -> None:
    """Seed a fresh Pubsub's sequence counter from the nanosecond clock (restart bug)."""
    pubsub.counter = time.time_ns()


def guard_push_msg(pubsub: Any, on_error: Callable[[str, Exception], None]) -> None:
    """Let no exception raised by one message escape ``pubsub.push_msg`` (it stopped Pubsub).

    ``on_error(forwarder, exc)`` is told about each such message instead.
    """
    original = pubsub.push_msg

    async def push_msg(forwarder: Any, msg: Any) -> None:
        try:
            await original(forwarder, msg)
        except Exception as exc:  # boundary: network input; reported to on_error
            on_error(str(forwarder), exc)

    pubsub.push_msg = push_msg


def stream_handlers(host: Any) -> MutableMapping[Any, Any]:
    """The host's table of inbound protocol -> handler, read for every new stream."""
    handlers: MutableMapping[Any, Any] = host.multiselect.handlers
    return handlers


def wrap_connection_gate(host: Any, wrap: Callable[[Any], Any]) -> None:
    """Replace the swarm's connection gate by ``wrap(current gate)``."""
    swarm = host.get_network()
    swarm.connection_gate = wrap(swarm.connection_gate)
