"""The payload side of a GossipNetwork: what we provide and serve, and fetching from holders.

Glue between the LRU store (store.py), the wire protocol (transfer.py) and the peer
sampler (sampling.py): serving limits each peer to a few concurrent transfers; fetching
tries holders one at a time and marks the ones that lie, stall or cannot be reached.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from gossip.errors import (
    FetchFailed,
    PayloadHashMismatch,
    PeerRefused,
    PeerUnreachable,
    TransferError,
)
from gossip.guards import DropCounter
from gossip.reconnect import rotate_addrs
from gossip.sampling import PeerSampler
from gossip.store import PayloadStore
from gossip.transfer import TransferLimits, fetch_from, keccak256, serve_stream

__all__ = ["Payloads"]

logger = logging.getLogger("gossip.network")

PayloadSource = Callable[[bytes], "bytes | None"]


class Payloads:
    """Provides, serves and fetches payloads by keccak256; counts into ``counts``."""

    def __init__(
        self,
        store: PayloadStore,
        limits: TransferLimits,
        sampler: PeerSampler,
        drops: DropCounter,
        counts: Counter[str],
        *,
        source: PayloadSource | None,
        max_transfers_per_peer: int,
    ) -> None:
        self.store = store
        self._limits = limits
        self._sampler = sampler
        self._drops = drops
        self._counts = counts
        self._source = source
        self._max_transfers = max_transfers_per_peer
        self._active_serves: Counter[str] = Counter()

    def provide(self, delta_hash: bytes, payload: bytes) -> None:
        if keccak256(payload) != delta_hash:
            raise PayloadHashMismatch("delta_hash is not keccak256(payload)")
        self.store.put(delta_hash, payload)

    def lookup(self, delta_hash: bytes) -> bytes | None:
        """The payload to serve under ``delta_hash``: memory first, then the source."""
        payload = self.store.get(delta_hash)
        if payload is not None or self._source is None:
            return payload
        try:
            payload = self._source(delta_hash)
        except Exception:  # a broken source must not take the serving task down
            logger.warning("payload_source failed for %s", delta_hash.hex()[:16], exc_info=True)
            return None
        if payload is None or len(payload) > self._limits.max_payload:
            return None
        return payload  # not re-hashed here: every fetcher checks the hash anyway

    def _acquire_slot(self, peer: str) -> bool:
        if self._active_serves[peer] >= self._max_transfers:
            self._drops.drop("serve_busy", peer)
            return False
        self._active_serves[peer] += 1
        return True

    def _release_slot(self, peer: str) -> None:
        self._active_serves[peer] -= 1
        if self._active_serves[peer] <= 0:
            del self._active_serves[peer]

    def _on_served(self, peer: str, size: int) -> None:
        self._counts["payloads_served"] += 1
        self._counts["bytes_sent"] += size

    async def serve(self, stream: Any) -> None:
        await serve_stream(
            stream, self.lookup, self._limits, self._acquire_slot, self._release_slot,
            self._on_served,
        )

    async def fetch(
        self,
        host: Any,
        delta_hash: bytes,
        from_peers: Sequence[str],
        *,
        provide: bool,
        ordered: bool,
    ) -> bytes:
        """See GossipNetwork.fetch."""
        held = self.store.get(delta_hash)
        if held is not None:
            return held
        reasons: dict[str, TransferError] = {}
        for peer in self._sampler.shuffle(from_peers, keep_order=ordered):
            try:
                payload = await fetch_from(host, peer, delta_hash, self._limits)
            except TransferError as exc:
                reasons[peer] = exc
                self._counts["fetch_attempts_failed"] += 1
                if not isinstance(exc, PeerRefused):
                    self._sampler.mark_misbehaving(peer)
                if isinstance(exc, PeerUnreachable):
                    self._rotate(host, peer)
                logger.info(
                    "fetch %s from %s failed: %s", delta_hash.hex()[:16], peer,
                    type(exc).__name__,
                )
                continue
            self._counts["fetches_succeeded"] += 1
            self._counts["bytes_received"] += len(payload)
            if provide:
                self.store.put(delta_hash, payload)
            return payload
        self._counts["fetches_failed"] += 1
        raise FetchFailed(delta_hash, reasons)

    @staticmethod
    def _rotate(host: Any, peer: str) -> None:
        """After a failed dial, start the next one at the peer's next address."""
        from libp2p.peer.id import ID

        try:
            rotate_addrs(host, ID.from_base58(peer))
        except ValueError:  # not a peer ID: fetch_from said so already
            return
