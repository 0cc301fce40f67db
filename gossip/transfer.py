"""``/medgossip/delta/1.0.0``: content-addressed request/response for delta payloads.

Request (client -> server), 36 bytes::

    b"MGD1" + keccak256 hash (32 bytes)

Response (server -> client)::

    status u8 (0 OK, 1 NOT_FOUND, 2 BUSY, 3 TOO_LARGE, 4 BAD_REQUEST) + length u64
    + ``length`` payload bytes when status is OK

The client refuses lengths over its own max_payload, reads exactly ``length`` bytes with a
stall timeout and an overall deadline, hashes as it reads and checks the keccak256
before handing anything up.  A sender killed mid-stream looks like a clean EOF to the
reader: the length prefix is what turns that into TruncatedTransfer.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import trio
from eth_hash.auto import keccak

from gossip.errors import (
    HashMismatch,
    PeerRefused,
    PeerUnreachable,
    TransferError,
    TransferTimeout,
    TruncatedTransfer,
)

__all__ = [
    "DELTA_PROTOCOL",
    "REQUEST_MAGIC",
    "Status",
    "TransferLimits",
    "fetch_from",
    "keccak256",
    "serve_stream",
]

logger = logging.getLogger("gossip.transfer")

DELTA_PROTOCOL = "/medgossip/delta/1.0.0"
REQUEST_MAGIC = b"MGD1"
REQUEST_LENGTH = len(REQUEST_MAGIC) + 32
_HEADER = struct.Struct(">BQ")
_READ_CHUNK = 4 * 1024 * 1024


class Status:
    OK = 0
    NOT_FOUND = 1
    BUSY = 2
    TOO_LARGE = 3
    BAD_REQUEST = 4


_STATUS_NAMES = {1: "not found", 2: "busy", 3: "too large", 4: "bad request"}


@dataclass(frozen=True)
class TransferLimits:
    max_payload: int
    request_timeout: float  # server: to receive the 36-byte request
    stall_timeout: float  # client: longest pause between two reads
    transfer_timeout: float  # both: whole transfer from one peer


def keccak256(data: bytes) -> bytes:
    """keccak256 as the chain computes it (eth-hash: the one keccak of the project)."""
    return bytes(keccak(data))


async def _read_some(stream: Any, n: int, stall_timeout: float, done: int, total: int) -> bytes:
    """Read 1..n bytes; ``done`` of ``total`` bytes so far, for the error message."""
    with trio.move_on_after(stall_timeout) as scope:
        chunk: bytes = await stream.read(n)
    if scope.cancelled_caught:
        raise TransferTimeout(f"stalled after {done} of {total} bytes")
    if not chunk:
        raise TruncatedTransfer(f"stream ended after {done} of {total} bytes")
    return chunk


async def _read_exactly(stream: Any, n: int, stall_timeout: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        buf += await _read_some(stream, n - len(buf), stall_timeout, len(buf), n)
    return bytes(buf)


async def _receive_hashed(stream: Any, length: int, stall_timeout: float) -> tuple[bytes, bytes]:
    """Read exactly ``length`` payload bytes; return them with their keccak256.

    keccak costs about as much CPU as everything else on the receiving side, and
    eth-hash's backend (pycryptodome) releases the GIL while it hashes, so one worker
    thread hashes the chunks already read (in order: a single worker takes them first
    in, first out) while this task reads the next ones: the two overlap on two cores.
    """
    hasher = keccak.new(b"")
    parts: list[bytes] = []
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keccak")
    try:
        last = None
        received = 0
        while received < length:
            chunk = await _read_some(
                stream, min(_READ_CHUNK, length - received), stall_timeout, received, length
            )
            parts.append(chunk)
            received += len(chunk)
            last = pool.submit(hasher.update, chunk)
        if last is not None:
            await trio.to_thread.run_sync(last.result)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return b"".join(parts), hasher.digest()


def _is_eof(exc: Exception) -> bool:
    from libp2p.network.stream.exceptions import StreamEOF, StreamReset

    return isinstance(exc, StreamEOF | StreamReset)


async def serve_stream(
    stream: Any,
    lookup: Callable[[bytes], bytes | None],
    limits: TransferLimits,
    acquire_slot: Callable[[str], bool],
    release_slot: Callable[[str], None],
    on_served: Callable[[str, int], None],
) -> None:
    """Answer one request on ``stream`` (membership was checked by the guard)."""
    peer = str(stream.muxed_conn.peer_id)
    try:
        try:
            with trio.fail_after(limits.request_timeout):
                request = await _read_exactly(stream, REQUEST_LENGTH, limits.request_timeout)
        except (trio.TooSlowError, TransferError) as exc:
            raise PeerRefused(f"incomplete request from {peer}") from exc
        if request[: len(REQUEST_MAGIC)] != REQUEST_MAGIC:
            await stream.write(_HEADER.pack(Status.BAD_REQUEST, 0))
            raise PeerRefused(f"bad request magic from {peer}")
        delta_hash = request[len(REQUEST_MAGIC) :]
        payload = lookup(delta_hash)
        if payload is None:
            await stream.write(_HEADER.pack(Status.NOT_FOUND, 0))
            return
        if not acquire_slot(peer):
            await stream.write(_HEADER.pack(Status.BUSY, 0))
            return
        try:
            with trio.fail_after(limits.transfer_timeout):
                await stream.write(_HEADER.pack(Status.OK, len(payload)))
                # One whole write, Yamux then cuts 1 MiB frames; a memoryview, so that
                # neither the cut nor a header in front copies the whole payload.
                await stream.write(memoryview(payload))  # type: ignore[arg-type]
            on_served(peer, len(payload))
        finally:
            release_slot(peer)
    finally:
        with trio.move_on_after(2):
            try:
                await stream.close()
            except Exception:  # the peer may be gone already; nothing to report
                logger.debug("closing a served stream failed", exc_info=True)


async def fetch_from(
    host: Any, peer_id: str, delta_hash: bytes, limits: TransferLimits
) -> bytes:
    """Fetch ``delta_hash`` from one peer; raise a TransferError subclass on any failure."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    try:
        peer = ID.from_base58(peer_id)
    except ValueError as exc:
        raise PeerUnreachable(f"bad peer ID {peer_id!r}") from exc
    stream = None
    try:
        with trio.fail_after(limits.transfer_timeout):
            try:
                stream = await host.new_stream(peer, [TProtocol(DELTA_PROTOCOL)])
                await stream.write(REQUEST_MAGIC + delta_hash)
            except Exception as exc:  # dial/negotiation failures come in many types
                raise PeerUnreachable(f"{type(exc).__name__}: {exc}") from exc
            try:
                status, length = _HEADER.unpack(
                    await _read_exactly(stream, _HEADER.size, limits.stall_timeout)
                )
                if status != Status.OK:
                    raise PeerRefused(_STATUS_NAMES.get(status, f"status {status}"))
                if length > limits.max_payload:
                    raise PeerRefused(f"offered {length} bytes, limit {limits.max_payload}")
                payload, digest = await _receive_hashed(stream, length, limits.stall_timeout)
            except TransferError:
                raise
            except Exception as exc:
                if _is_eof(exc):
                    raise TruncatedTransfer(f"stream ended early: {type(exc).__name__}") from exc
                raise TruncatedTransfer(f"{type(exc).__name__}: {exc}") from exc
    except trio.TooSlowError as exc:
        raise TransferTimeout(f"no complete answer within {limits.transfer_timeout} s") from exc
    finally:
        if stream is not None:
            with trio.move_on_after(1):
                try:
                    await stream.close()
                except Exception:  # already reset by the peer
                    logger.debug("closing a fetch stream failed", exc_info=True)
    if digest != delta_hash:
        raise HashMismatch(f"{peer_id} sent {length} bytes hashing to {digest.hex()}")
    return payload
