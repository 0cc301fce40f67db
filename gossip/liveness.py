"""Notice dead connections: ping every connected peer, close the ones that stop answering.

A TCP connection to a host whose link went down, or whose process froze, stays
"connected" for many minutes: nothing is written on an idle connection, so nothing
fails (a 30 s link-down left every peer reporting the same peers on the same sockets).
py-libp2p 0.8.1 has no keepalive that closes anything: its Yamux RTT pings time out
silently, and the swarm's opt-in health monitor scores connections and dials a
replacement before closing the old one.  So each connected peer gets a libp2p ping
(``/ipfs/ping/1.0.0``, which every libp2p host serves) every ``interval`` seconds; a
ping unanswered within ``timeout`` is retried at once, and after ``misses`` unanswered
pings in a row every connection to that peer is closed.  The peer count drops and the
reconnect loop (reconnect.py) dials the peer again with backoff.

Worst case from the moment a peer stops answering to the close:
``interval + misses * timeout`` (3 + 2 x 4 = 11 s with the defaults), under the 15 s the
network promises.  A ping that fails for another reason (the stream was refused or
reset, the connection is already closing) is not a miss: an answer, even a refusal,
means the other side is alive.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

__all__ = ["LivenessSettings", "PING_PROTOCOL", "ping_once", "watch_liveness"]

logger = logging.getLogger("gossip.liveness")

PING_PROTOCOL = "/ipfs/ping/1.0.0"


@dataclass(frozen=True)
class LivenessSettings:
    interval: float = 3.0
    timeout: float = 4.0
    misses: int = 2

    @property
    def worst_case(self) -> float:
        """Seconds from the last answer to the close, at most (not counting the close)."""
        return self.interval + self.misses * self.timeout


async def ping_once(host: Any, peer: Any, timeout: float) -> bool | None:
    """One ping round trip: True answered, False no answer within ``timeout``, None refused."""
    from libp2p.custom_types import TProtocol
    from libp2p.host.ping import perform_ping_roundtrip

    stream = None
    try:
        with trio.move_on_after(timeout):
            stream = await host.new_stream(peer, [TProtocol(PING_PROTOCOL)])
            await perform_ping_roundtrip(stream)
            return True
        return False
    except trio.TooSlowError:  # py-libp2p's own 10 s response timeout
        return False
    except Exception as exc:  # boundary: refused, reset, closing -- an answer of sorts
        logger.debug("ping %s failed: %s: %s", peer, type(exc).__name__, exc)
        return None
    finally:
        if stream is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                try:
                    await stream.close()
                except Exception:  # the stream or its connection is gone already
                    logger.debug("closing a ping stream failed", exc_info=True)


async def _watch_peer(
    host: Any,
    peer: Any,
    settings: LivenessSettings,
    on_dead: Callable[[Any], Awaitable[None]],
    done: Callable[[Any], None],
) -> None:
    try:
        for _ in range(settings.misses):
            answered = await ping_once(host, peer, settings.timeout)
            if answered is not False:
                return
        logger.info("peer %s answered none of %d pings in %.0f s: closing its connections",
                    peer, settings.misses, settings.misses * settings.timeout)
        await on_dead(peer)
    finally:
        done(peer)


async def watch_liveness(
    host: Any,
    settings: LivenessSettings,
    on_dead: Callable[[Any], Awaitable[None]],
) -> None:
    """Ping every connected peer each ``settings.interval`` seconds, forever.

    Peers are probed concurrently and independently: a slow peer delays no other.
    ``on_dead(peer_id)`` is awaited for a peer that missed ``settings.misses`` pings.
    """
    probing: set[Any] = set()
    async with trio.open_nursery() as nursery:
        while True:
            await trio.sleep(settings.interval)
            for peer in host.get_connected_peers():
                if peer in probing:
                    continue
                probing.add(peer)
                nursery.start_soon(_watch_peer, host, peer, settings, on_dead, probing.discard)
