"""Keep dialling the peers we should be connected to: bootstrap peers, and peers we lost.

Bootstrap peers are dialled at start and whenever they are gone (restarts, partitions),
for as long as the network runs.  A peer we were connected to and lost (its connection
closed, or liveness.py closed it because it stopped answering) is dialled again too, at
the addresses the peerstore holds for it (from identify or its announcements), until it
has been gone for ``forget_after`` seconds; whichever side comes back first dials.

A peer that stays unreachable is retried with a doubling delay, from ``interval`` up to
``max_backoff``; py-libp2p's swarm would refuse to redial it for 60 s after a failed dial
(its "negative cache"), so that cache is cleared for the peer before each of our dials.
Our own peer ID is never a target; our own addresses are refused by the dial gate
(addresses.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

__all__ = ["MAX_RECONNECT_BACKOFF", "Redialer", "rotate_addrs"]

logger = logging.getLogger("gossip.reconnect")

MAX_RECONNECT_BACKOFF = 15.0
"""longest pause, in seconds, between two dials of an unreachable peer: after a partition
heals, peers meet again within this (plus one dial)."""


ADDR_TTL = 600
"""seconds the peerstore keeps a peer's rotated addresses."""


def rotate_addrs(host: Any, peer_id: Any) -> None:
    """Move a peer's first known address to the end, so the next dial starts elsewhere.

    py-libp2p 0.8.1 dials only the first address of each transport class (one TCP
    address per peer), so a host advertising several interface addresses whose first is
    unreachable from here would never be reached without this.
    """
    peerstore = host.get_peerstore()
    try:
        addrs = list(peerstore.addrs(peer_id))
    except Exception:  # unknown or expired peer: nothing to rotate
        return
    if len(addrs) > 1:
        peerstore.clear_addrs(peer_id)
        peerstore.add_addrs(peer_id, addrs[1:] + addrs[:1], ADDR_TTL)


@dataclass
class _Target:
    info: Any  # libp2p PeerInfo
    permanent: bool  # a bootstrap peer: never forgotten
    delay: float
    next_try: float = 0.0
    lost_at: float = 0.0


class Redialer:
    """Which peers to redial, and when; ``run()`` is the loop."""

    def __init__(
        self,
        host: Any,
        own_peer_id: str,
        bootstrap: Sequence[Any],
        *,
        interval: float,
        forget_after: float,
        max_backoff: float = MAX_RECONNECT_BACKOFF,
        on_skipped: Callable[[str], None] = lambda reason: None,
    ) -> None:
        from libp2p.peer.peerinfo import info_from_p2p_addr

        self._host = host
        self._own = own_peer_id
        self._interval = interval
        self._forget_after = forget_after
        self._max_backoff = max(interval, max_backoff)
        self._targets: dict[str, _Target] = {}
        self._was_connected: dict[str, Any] = {}
        self._dialling: set[str] = set()
        for addr in bootstrap:
            try:
                info = info_from_p2p_addr(addr)
            except Exception:  # a bootstrap addr without /p2p/: cannot be kept
                logger.warning("bootstrap address %s has no /p2p/ part; ignored", addr)
                on_skipped("bootstrap_no_peer_id")
                continue
            peer = info.peer_id.to_base58()
            if peer == own_peer_id:
                logger.info("bootstrap address %s is this peer itself; ignored", addr)
                on_skipped("bootstrap_self")
                continue
            known = self._targets.get(peer)
            if known is not None:
                known.info.addrs.extend(info.addrs)
            else:
                self._targets[peer] = _Target(info, permanent=True, delay=interval)

    @property
    def targets(self) -> list[str]:
        """Peer IDs currently kept (bootstrap peers and recently lost peers)."""
        return sorted(self._targets)

    def _connected(self) -> dict[str, Any]:
        return {peer.to_base58(): peer for peer in self._host.get_connected_peers()}

    def _note_losses(self, connected: dict[str, Any], now: float) -> None:
        from libp2p.peer.peerinfo import PeerInfo

        for peer, peer_id in self._was_connected.items():
            if peer in connected or peer == self._own or peer in self._targets:
                continue
            logger.info("lost peer %s: will dial it again", peer)
            self._targets[peer] = _Target(
                PeerInfo(peer_id, []), permanent=False, delay=self._interval,
                next_try=now, lost_at=now,
            )
        self._was_connected = connected
        for peer, target in list(self._targets.items()):
            if peer in connected:
                target.delay = self._interval
                if not target.permanent:
                    del self._targets[peer]  # back: tracked as connected again
            elif not target.permanent and now - target.lost_at > self._forget_after:
                logger.info("peer %s gone for %.0f s: no longer dialled", peer, now - target.lost_at)
                del self._targets[peer]

    async def _dial(self, peer: str, target: _Target) -> None:
        try:
            self._host.get_network().unblock_peer(target.info.peer_id)
            with trio.fail_after(max(5.0, self._interval)):
                await self._host.connect(target.info)
            logger.info("connected to %s peer %s",
                        "bootstrap" if target.permanent else "lost", peer)
        except Exception as exc:  # unreachable for now; retried later
            logger.debug("peer %s unreachable: %s: %s", peer, type(exc).__name__, exc)
            rotate_addrs(self._host, target.info.peer_id)
            target.next_try = trio.current_time() + target.delay
            target.delay = min(2 * target.delay, self._max_backoff)
        finally:
            self._dialling.discard(peer)

    async def run(self) -> None:
        """Every ``interval`` seconds, start a dial of each due target; forever.

        Dials run concurrently: a peer whose dial hangs (a frozen process still accepts
        TCP connections) holds up no other.
        """
        async with trio.open_nursery() as nursery:
            while True:
                now = trio.current_time()
                connected = self._connected()
                self._note_losses(connected, now)
                for peer, target in self._targets.items():
                    if peer in connected or peer in self._dialling or now < target.next_try:
                        continue
                    self._dialling.add(peer)
                    nursery.start_soon(self._dial, peer, target)
                await trio.sleep(self._interval)
