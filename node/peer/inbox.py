"""`DeltaInbox`: every peer delta this node has heard of and not merged yet.

A delta moves through the inbox as::

    offer(announcement)      announced: wanted, waiting to be verified and fetched
    deliver(payload)         ready: verified against the chain, bytes fetched
    take(...) -> payloads    handed to a merge
    settle(merged, round)    merged (kept in node.json: never merged twice)
    fail(...) / refuse(...)  refused for good (kept in node.json: never tried again)

"Is this delta still wanted?" has one answer, `wanted()`: not merged and not refused.
The merged and refused maps are the node's durable state (`NodeState`), shared with the
checkpoint; only trio tasks call the inbox, so nothing here needs a lock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import trio

from gossip import Announcement
from node.learner import PeerPayload

MAX_TRIES = 3
"""a delta that failed this many pulls (not recorded, unreachable, lying holder) is refused."""


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

    def __init__(self, merged: dict[str, int], refused: dict[str, str]) -> None:
        self._merged = merged
        self._refused = refused
        self._announced: dict[str, dict[str, Announcement]] = {}
        """per peer ID, its wanted deltas that are not ready yet."""
        self._ready: dict[str, list[PeerPayload]] = {}
        """verified payloads waiting for a merge, per peer ID."""
        self._failures: dict[str, int] = {}
        self.announced = Signal()
        """fired when a new wanted delta is offered."""
        self.arrived = Signal()
        """fired when a payload is delivered (ready to merge) or a delta is given up on."""

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
        """Peers with deltas waiting to be pulled, shuffled, leaving out `busy` ones."""
        skip = set(busy)
        peers = [pid for pid, pending in self._announced.items() if pending and pid not in skip]
        random.shuffle(peers)
        return peers

    def next_for(self, peer_id: str) -> Announcement | None:
        """The newest wanted delta of this peer that is not ready yet."""
        todo = [a for k, a in self._announced.get(peer_id, {}).items() if self.wanted(k)]
        return max(todo, key=lambda a: a.round) if todo else None

    def pending(self, key: str) -> bool:
        """Still announced and waiting for a pull (not ready, not given up on)."""
        return any(key in anns for anns in self._announced.values())

    # --- ready -----------------------------------------------------------------------

    def deliver(self, payload: PeerPayload) -> None:
        key = key_of(payload.delta_hash)
        self._announced.get(payload.source, {}).pop(key, None)
        self._failures.pop(key, None)
        if self.wanted(key) and not self._is_ready(key):
            self._ready.setdefault(payload.source, []).append(payload)
        self.arrived.fire()

    def has_ready(self) -> bool:
        return any(self._ready.values())

    def settled(self, keys: Iterable[str]) -> bool:
        """Is each of these deltas ready, merged or refused (nothing left to pull)?"""
        return all(not self.wanted(k) or self._is_ready(k) for k in keys)

    def take(self, fan_out: int, every_peer: bool = False) -> list[PeerPayload]:
        """All ready payloads of up to `fan_out` peers chosen at random (or of every peer)."""
        if fan_out == 0:
            return []
        chosen = [pid for pid, ready in self._ready.items() if ready]
        random.shuffle(chosen)
        return [p for pid in (chosen if every_peer else chosen[:fan_out]) for p in self._ready.pop(pid)]

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
        self._forget_unwanted()
        self.arrived.fire()

    def fail(self, ann: Announcement, reason: str, final: bool) -> bool:
        """Count a failed pull; refuse the delta at once if `final`, else after MAX_TRIES.
        True if it was given up on."""
        key = key_of(ann.delta_hash)
        self._failures[key] = self._failures.get(key, 0) + 1
        if final or self._failures[key] >= MAX_TRIES:
            self.refuse(key, reason)
            return True
        return False

    def _forget_unwanted(self) -> None:
        for pending in self._announced.values():
            for key in [k for k in pending if not self.wanted(k)]:
                del pending[key]
