"""`ChainWatch`: every contribution recorded on chain reaches the inbox and the norm book.

Every chain_poll it reads the contributions recorded since (`ChainView.refresh`, which
also refreshes the normaliser's statistics), appends them to the norm book's chain
order, and offers other nodes' records to the inbox, announced by gossip or not: the
chain, not timing, says what every peer merges. Our own records' norms come from our
payloads on disk (a re-encoded front-run payload, or one recorded before a restart).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

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

    def offer(self, records: Iterable[Recorded]) -> set[str]:
        """Put every record in the norm book's chain order; offer other nodes' records to
        the inbox; the keys of those it wanted."""
        records = list(records)
        self.norms.extend(ChainRecord(key_of(r.delta_hash), r.author) for r in records)
        return {
            key_of(r.delta_hash) for r in records
            if r.author != self.address
            and self.inbox.offer(Announcement(r.author_peer_id, r.round, r.delta_hash, 0, "unknown", {}))
        }

    async def run(self) -> None:
        while True:
            await trio.sleep(self.poll)
            self.offer(await trio.to_thread.run_sync(self.chain.refresh))
            own = [r.key for r in self.norms.missing() if r.author == self.address]
            if own:
                for key, norm in (await trio.to_thread.run_sync(self._own_norms, own)).items():
                    self.norms.learn(key, norm)
            self.inbox.arrived.fire()  # new records, or time passing, may decide references

    def _own_norms(self, keys: list[str]) -> dict[str, float]:
        """The norms of our own payloads on disk (worker thread)."""
        payloads = {key: self.store.load_payload(key) for key in keys}
        return {key: self.measure(p) for key, p in payloads.items() if p is not None}
