"""`Prefetcher`: verifies and fetches announced deltas while the round loop trains.

Up to `fan_out` peers are pulled from at once, up to PULLS_PER_PEER of each peer's
wanted deltas at a time, oldest first: a delta is merged only once the norms of the
records before it are known (`NormBook`), so pulling in chain order lets each arrival
through the gate at once, where newest first left a backlog waiting on its oldest
records (measured on emulated hosts at +50 ms: 1.5 merges/s per peer newest first, 3.6
oldest first). A delta is fetched only once its hash is recorded on chain by
the registered address behind the announcing peer ID; the fetched bytes must hash to it
(checked by the transport). Failures come back as data: counted, logged, and passed to
the inbox, which tries them again later (a chain error, an unreachable or lying holder:
timing must not decide what a peer merges). An announcement of a hash recorded by
another node is dropped, and the hash stays wanted under its true author (a node
announcing another's hash cannot make us refuse a valid delta). A fetched payload's norm
goes into the `NormBook` (node.peer.norms) before it is delivered; one that does not
decode against our model, or whose header does not name its chain record's author and
round (a front-run hash), is refused for good, before any norm of it is known: every
peer then passes over it in the norm windows alike.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import trio

from contracts.errors import ChainUnavailable, LedgerError
from gossip import Announcement, GossipNetwork
from gossip.errors import FetchFailed, HashMismatch
from node.config import NodeConfig
from node.errors import CodecError
from node.learner import PeerPayload
from node.peer.chain_view import ChainView
from node.peer.inbox import DeltaInbox, key_of
from node.peer.norms import NormBook
from node.peer.status import Counters

log = logging.getLogger("medgossip.peer")

PULLS_PER_PEER = 4
"""deltas of one peer verified and fetched at once."""


class Prefetcher:
    def __init__(
        self, inbox: DeltaInbox, chain: ChainView, net: GossipNetwork, config: NodeConfig, counters: Counters,
        norms: NormBook, measure: Callable[[bytes], float],
    ) -> None:
        self.inbox = inbox
        self.norms = norms
        self.measure = measure
        """(payload, recorded author, recorded round) -> the L2 norm of its update (raises
        CodecError if it does not decode, or its header does not name that author and round)."""
        self.chain = chain
        self.net = net
        self.config = config
        self.counters = counters
        self._done = trio.Event()

    async def run(self) -> None:
        busy: set[str] = set()

        async def pull_peer(pid: str) -> None:
            pulling: set[str] = set()

            async def puller() -> None:
                # a failed pull backs off (the inbox skips it until it is due): go on
                # with this peer's other deltas, so one unfetchable delta starves none
                while (ann := self.inbox.next_for(pid, skip=pulling)) is not None:
                    key = key_of(ann.delta_hash)
                    pulling.add(key)
                    try:
                        payload = await self.pull_one(ann)
                    finally:
                        pulling.discard(key)
                    if payload is not None:
                        self.inbox.deliver(payload)

            try:
                async with trio.open_nursery() as pullers:
                    for _ in range(PULLS_PER_PEER):
                        pullers.start_soon(puller)
            finally:
                busy.discard(pid)
                self._done.set()

        async with trio.open_nursery() as nursery:
            while True:
                for pid in self.inbox.peers_to_pull(busy)[: max(0, self.config.fan_out - len(busy))]:
                    busy.add(pid)
                    nursery.start_soon(pull_peer, pid)
                self._done = trio.Event()
                with trio.move_on_after(self.config.chain_poll):
                    await first_of(self.inbox.announced.next, self._done)

    async def pull_one(self, ann: Announcement) -> PeerPayload | None:
        """Verify on chain, then fetch; None (counted, logged, told to the inbox) on failure."""
        key = key_of(ann.delta_hash)
        try:
            record = await trio.to_thread.run_sync(self.chain.verify, ann.delta_hash, ann.peer_id)
        except LedgerError as exc:  # unknown, not "no": tried again later
            reason = "unverifiable-chain-down" if isinstance(exc, ChainUnavailable) else "unverifiable"
            self.counters.drop(reason)
            log.warning("cannot verify delta=%s now (will retry): %s", key[:10], exc)
            self.inbox.fail(ann, reason)
            return None
        if isinstance(record, str):
            self.counters.drop(record)
            log.warning("dropped delta=%s from peer=%s: %s", key[:10], ann.peer_id, record)
            if record == "wrong-author":  # the announcer did not record it: the record still stands
                self.inbox.drop(ann)
            else:  # "not-recorded" may be "not yet": forgotten after a few tries, offered
                # again by the chain watch if it is recorded later; never refused
                self.inbox.fail(ann, record, forget=True)
            return None
        # The author first; then a few others, which hold it if they already fetched it.
        others = [p for p in self.net.connected_peers() if p != ann.peer_id]
        random.shuffle(others)
        holders = [ann.peer_id, *others]
        try:
            payload = await self.net.fetch(ann.delta_hash, from_peers=holders[: 1 + self.config.fan_out], ordered=True)
        except FetchFailed as exc:
            lied = any(isinstance(r, HashMismatch) for r in exc.reasons.values())
            reason = "payload-hash-mismatch" if lied else "fetch-failed"
            self.counters.drop(reason)
            log.warning("fetch failed delta=%s: %s", key[:10], exc)
            self.inbox.fail(ann, reason)
            return None
        try:  # the header must name the record's author and round: refused before any norm is known
            self.norms.learn(key, await trio.to_thread.run_sync(self.measure, payload, record.author, record.round))
        except CodecError as exc:
            self.counters.drop("undecodable")
            self.inbox.refuse(key, "undecodable")
            log.warning("refused delta=%s: %s", key[:10], exc)
            return None
        return PeerPayload(ann.peer_id, ann.delta_hash, payload, record.weight, record.author, record.round)


async def first_of(*events: trio.Event) -> None:
    """Return as soon as one of these events is set."""
    async with trio.open_nursery() as nursery:
        for event in events:
            async def one(e: trio.Event = event) -> None:
                await e.wait()
                nursery.cancel_scope.cancel()
            nursery.start_soon(one)
