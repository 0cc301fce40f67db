"""`DeltaInbox`: every peer delta this node has heard of and not merged yet.

A delta moves through the inbox as::

    offer(announcement)      announced: wanted, waiting to be verified and fetched
    deliver(payload)         ready: verified against the chain, bytes fetched
    take(...) -> payloads    handed to a merge
    settle(merged, round)    merged (kept in node.json: never merged twice)
    refuse(...)              refused for good (kept in node.json: never tried again)
    fail(...)                a failed pull: tried again later (backing off)
    drop(announcement)       a false announcement (another node recorded the hash) dropped

"Is this delta still wanted?" has one answer, `wanted()`: not merged and not refused.
Only the payload's bytes against the chain record refuse (undecodable, a header naming
another author or round, a norm far over its reference): what depends on timing (a holder unreachable or lying, a chain that cannot answer) is tried
again later, so every peer ends with the same set (DESIGN.md, "Trust model"). A payload
that nobody serves stays wanted, on every peer alike, retried every RETRY_MAX s at most.
A healed network must not wait out old backoffs: `retry_now` makes them due at once
(the chain watch calls it when a peer connects), and RETRY_MAX bounds the rest.
The merged and refused maps are the node's durable state (`NodeState`), shared with the
checkpoint; only trio tasks call the inbox, so nothing here needs a lock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterable

import trio

from gossip import Announcement
from node.learner import PeerPayload

MAX_TRIES = 3
"""after this many failed pulls a delta counts as settled for the catch-up (nothing left to
wait for now), and an announced hash still not recorded on chain is forgotten (the chain
watcher offers it again if it is recorded later). Neither refuses it."""
RETRY_BASE = 0.5
RETRY_MAX = 10.0
"""seconds before a failed pull is tried again: RETRY_BASE, doubling per failure, at most
RETRY_MAX. Unless a reconnect makes them due at once (`retry_now`), a delta recorded during
a partition is merged at most RETRY_MAX + a pull in flight at the heal (its holders'
timeouts: 2 x 15 s with two holders) + one round after the network heals. The goal is
60 s (issue 14): 30 s would not keep that bound under it."""


def key_of(delta_hash: bytes) -> str:
    return "0x" + delta_hash.hex()


class Signal:
    """Wake every task waiting for the next `fire()` (a re-armed trio.Event)."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = trio.Event()

    @property
    def next(self) -> trio.Event:
        """The event the next `fire()` sets: take it before a checkpoint, wait on it after."""
        return self._event

    async def wait(self) -> None:
        await self._event.wait()


class DeltaInbox:
    """Announced, ready, merged and refused deltas of peers, by delta hash (hex)."""

    def __init__(
        self, merged: dict[str, int], refused: dict[str, str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._merged = merged
        self._clock = clock
        """the time backoffs are measured in (trio.current_time in tests on a MockClock)."""
        self._refused = refused
        self._announced: dict[str, dict[str, Announcement]] = {}
        """per peer ID, its wanted deltas that are not ready yet."""
        self._ready: dict[str, list[PeerPayload]] = {}
        """verified payloads waiting for a merge, per peer ID."""
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        """key -> clock() before which a failed pull is not tried again."""
        self.announced = Signal()
        """fired when a new wanted delta is offered."""
        self.arrived = Signal()
        """fired when a payload is delivered (ready to merge) or a delta is given up on."""
        self.gate: Callable[[PeerPayload], bool] = lambda payload: True
        """may this ready payload be merged now? (the peer waits for its norm reference)"""

    # --- the one rule ----------------------------------------------------------------

    def wanted(self, key: str) -> bool:
        return key not in self._merged and key not in self._refused

    # --- announced -------------------------------------------------------------------

    def offer(self, ann: Announcement) -> bool:
        """Take an announcement (gossip, or found on chain); False if not wanted."""
        key = key_of(ann.delta_hash)
        if not self.wanted(key) or self._is_ready(key):
            return False
        self._announced.setdefault(ann.peer_id, {})[key] = ann
        self.announced.fire()
        return True

    def peers_to_pull(self, busy: Iterable[str] = ()) -> list[str]:
        """Peers with deltas due for a pull, shuffled, leaving out `busy` ones."""
        skip = set(busy)
        peers = [pid for pid in self._announced if pid not in skip and self.next_for(pid) is not None]
        random.shuffle(peers)
        return peers

    def next_for(self, peer_id: str, skip: Collection[str] = ()) -> Announcement | None:
        """The oldest wanted delta of this peer that is not ready yet, is due (not
        backing off after a failed pull) and is not in `skip` (keys being pulled): the
        norm gate needs the records before a delta, so chain order is the fast one."""
        now = self._clock()
        todo = [
            a for k, a in self._announced.get(peer_id, {}).items()
            if k not in skip and self.wanted(k) and self._retry_at.get(k, 0.0) <= now
        ]
        return min(todo, key=lambda a: a.round) if todo else None

    def retry_now(self) -> None:
        """Every failed pull is due again now (a peer connected: the network may have
        healed); the failure counts stay, so the next failures back off as long."""
        if self._retry_at:
            self._retry_at.clear()
            self.announced.fire()  # the prefetcher looks at once

    def pending(self, key: str) -> bool:
        """Still announced and waiting for a pull (not ready, not refused or forgotten)."""
        return any(key in anns for anns in self._announced.values())

    # --- ready -----------------------------------------------------------------------

    def deliver(self, payload: PeerPayload) -> None:
        key = key_of(payload.delta_hash)
        self._announced.get(payload.source, {}).pop(key, None)
        self._failures.pop(key, None)
        self._retry_at.pop(key, None)
        if self.wanted(key) and not self._is_ready(key):
            self._ready.setdefault(payload.source, []).append(payload)
        self.arrived.fire()

    def has_ready(self) -> bool:
        return any(self.gate(p) for ready in self._ready.values() for p in ready)

    def settled(self, keys: Iterable[str]) -> bool:
        """Is each of these deltas ready, merged, refused, or not worth waiting for now
        (failed MAX_TRIES pulls, or no longer announced)?"""
        return all(
            not self.wanted(k) or self._is_ready(k) or self._failures.get(k, 0) >= MAX_TRIES or not self.pending(k)
            for k in keys
        )

    def take(self, fan_out: int, every_peer: bool = False) -> list[PeerPayload]:
        """The ready payloads the gate lets through, of up to `fan_out` peers chosen at
        random (or of every peer); the others stay ready."""
        if fan_out == 0:
            return []
        chosen = [pid for pid, ready in self._ready.items() if any(self.gate(p) for p in ready)]
        random.shuffle(chosen)
        taken: list[PeerPayload] = []
        for pid in chosen if every_peer else chosen[:fan_out]:
            passes = [(p, self.gate(p)) for p in self._ready[pid]]
            taken += [p for p, ok in passes if ok]
            self._ready[pid] = [p for p, ok in passes if not ok]
        return taken

    def _is_ready(self, key: str) -> bool:
        return any(key_of(p.delta_hash) == key for ready in self._ready.values() for p in ready)

    # --- settled for good ------------------------------------------------------------

    def settle(self, merged: Iterable[bytes], round_: int) -> None:
        """These deltas are merged into our model at `round_`."""
        for delta_hash in merged:
            self._merged[key_of(delta_hash)] = round_
        self._forget_unwanted()

    def refuse(self, key: str, reason: str) -> None:
        """Never merge this delta (undecodable, wrong author...)."""
        self._refused[key] = reason
        self._failures.pop(key, None)
        self._retry_at.pop(key, None)
        self._forget_unwanted()
        self.arrived.fire()

    def fail(self, ann: Announcement, reason: str, forget: bool = False) -> bool:
        """A pull failed for a reason that may pass (unreachable holders, a lying holder,
        a chain that cannot answer): tried again after a doubling delay. With `forget` (a
        hash the chain does not hold, maybe not yet) the announcement is dropped after
        MAX_TRIES. Never a refusal. True once there is nothing to wait for now (`settled`)."""
        key = key_of(ann.delta_hash)
        tries = self._failures[key] = self._failures.get(key, 0) + 1
        if forget and tries >= MAX_TRIES:
            self._announced.get(ann.peer_id, {}).pop(key, None)
            self._failures.pop(key, None)
            self._retry_at.pop(key, None)
        else:
            self._retry_at[key] = self._clock() + min(RETRY_MAX, RETRY_BASE * 2 ** (tries - 1))
        if tries >= MAX_TRIES:
            self.arrived.fire()  # a catch-up waiting on it stops waiting
            return True
        return False

    def drop(self, ann: Announcement) -> None:
        """A false announcement (the chain says another node recorded this hash): drop
        it, refuse nothing. The delta stays wanted under its record's true author, whom
        the chain watch offers: a node announcing another's hash cannot make us refuse a
        valid delta."""
        self._announced.get(ann.peer_id, {}).pop(key_of(ann.delta_hash), None)
        self.arrived.fire()

    def _forget_unwanted(self) -> None:
        for pending in self._announced.values():
            for key in [k for k in pending if not self.wanted(k)]:
                del pending[key]
