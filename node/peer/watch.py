"""`ChainWatch`: every contribution recorded on chain reaches the inbox and the norm book.

Every chain_poll it reads the contributions recorded since (`ChainView.refresh`, which
also refreshes the normaliser's statistics), appends them to the norm book's chain
order, and offers other nodes' records to the inbox, announced by gossip or not: the
chain, not timing, says what every peer merges. Our own records' norms come from our
payloads on disk (a re-encoded front-run payload, or one recorded before a restart).

It is also the peer's anti-entropy. It keeps every valid record of another node that
is neither merged nor refused (`unmerged`: the "known but unmerged" counter of the
status and the metrics), and every poll it offers again those the inbox no longer
holds (an announced hash forgotten after "not recorded" answers, say), so no record
stays unmerged for want of an announcement. When a peer connects (the network may
have healed) every backing-off pull is made due at once (`DeltaInbox.retry_now`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import trio

from gossip import Announcement
from node.checkpoint import CheckpointStore
from node.peer.chain_view import ChainView, Recorded
from node.peer.inbox import DeltaInbox, key_of
from node.peer.norms import ChainRecord, NormBook


class ChainWatch:
    def __init__(
        self, chain: ChainView, inbox: DeltaInbox, norms: NormBook, store: CheckpointStore,
        measure: Callable[[bytes], float], address: str, poll: float,
    ) -> None:
        self.chain = chain
        self.inbox = inbox
        self.norms = norms
        self.store = store
        self.measure = measure
        """payload bytes -> the L2 norm of its update (`Learner.payload_norm`)."""
        self.address = address
        self.poll = poll
        self.connected: Callable[[], Iterable[str]] = tuple
        """the peer IDs connected now (`GossipNetwork.connected_peers`)."""
        self.on_poll: Callable[[], Awaitable[None]] | None = None
        """called after every poll (the peer writes its status: the counter is fresh)."""
        self._unmerged: dict[str, Recorded] = {}
        """key -> record of another node, wanted when last looked at."""
        self._peers: set[str] = set()

    def offer(self, records: Iterable[Recorded]) -> set[str]:
        """Put every record in the norm book's chain order; offer other nodes' records to
        the inbox; the keys of those it wanted."""
        records = list(records)
        self.norms.extend(ChainRecord(key_of(r.delta_hash), r.author) for r in records)
        wanted = set()
        for record in records:
            key = key_of(record.delta_hash)
            if record.author == self.address or not self.inbox.wanted(key):
                continue
            self._unmerged[key] = record
            if self.inbox.offer(_announcement(record)):
                wanted.add(key)
        return wanted

    def unmerged(self) -> int:
        """Valid records on chain by other nodes that are neither merged nor refused."""
        self._unmerged = {k: r for k, r in self._unmerged.items() if self.inbox.wanted(k)}
        return len(self._unmerged)

    def repair(self) -> None:
        """Offer again every unmerged record the inbox dropped; on a new connection,
        make every failed pull due now."""
        self.unmerged()
        for key, record in self._unmerged.items():
            if not self.inbox.pending(key):
                self.inbox.offer(_announcement(record))  # False (nothing to do) if ready
        peers = set(self.connected())
        if peers - self._peers:
            self.inbox.retry_now()
        self._peers = peers

    async def run(self) -> None:
        while True:
            await trio.sleep(self.poll)
            self.offer(await trio.to_thread.run_sync(self.chain.refresh))
            self.repair()
            own = [r.key for r in self.norms.missing() if r.author == self.address]
            if own:
                for key, norm in (await trio.to_thread.run_sync(self._own_norms, own)).items():
                    self.norms.learn(key, norm)
            self.inbox.arrived.fire()  # new records, or time passing, may decide references
            if self.on_poll is not None:
                await self.on_poll()

    def _own_norms(self, keys: list[str]) -> dict[str, float]:
        """The norms of our own payloads on disk (worker thread)."""
        payloads = {key: self.store.load_payload(key) for key in keys}
        return {key: self.measure(p) for key, p in payloads.items() if p is not None}


def _announcement(record: Recorded) -> Announcement:
    """A record on chain, as if its author had announced it (size and codec unknown)."""
    return Announcement(record.author_peer_id, record.round, record.delta_hash, 0, "unknown", {})
