"""`ChainView`: the peer's questions to the ledger.

Every method blocks on JSON-RPC: call it from a worker thread. It returns answers and
keeps only its own caches (membership, registry, the recorded sample-count mean); it
never touches the peer's state.

Every answer about a delta is a function of the chain alone (DESIGN.md, "Trust model"):
a delta is valid iff it is recorded, by the node behind the announcing peer ID (a
revoked node cannot record, so each of its records precedes its revocation and stays
valid on every peer). Its weight is its recorded sample count capped by its author's
cap. A chain that cannot be reached raises (`LedgerError`): "unknown, retry", never "no".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from contracts.errors import LedgerError
from gossip.errors import MedgossipError
from contracts.ledger import AuditLedger
from gossip.identity import eth_address_from_peer_id, peer_id_from_bytes, peer_id_to_bytes
from node.learner import Network

log = logging.getLogger("medgossip.peer")

MEMBERSHIP_TTL = 10.0
"""seconds a positive on-chain membership answer is trusted (a revocation is felt after this)."""


@dataclass(frozen=True)
class Verified:
    """A delta hash's record, as the merge needs it."""

    author: str
    round: int
    weight: int
    """recorded sample count, capped by the author's sample cap."""


@dataclass(frozen=True)
class Recorded:
    """A contribution on chain, as the peer needs it to fetch and verify it."""

    delta_hash: bytes
    author_peer_id: str
    round: int
    author: str


class ChainView:
    """The peer's questions to the ledger, each blocking (call from a worker thread)."""

    def __init__(self, ledger: AuditLedger) -> None:
        self.ledger = ledger
        self._members: dict[str, float] = {}
        self._active = 1
        self._samples: tuple[int, int] = (0, 0)
        """(sum, count) of the sample counts recorded on chain up to _next_block."""
        self._next_block = 0
        self._fresh_until = 0.0
        self._caps: dict[str, int] = {}
        """address -> sample cap, from the registry (refreshed every MEMBERSHIP_TTL s)."""
        self._peer_ids: dict[str, str] = {}
        """address -> peer ID of every registered node (active or revoked)."""

    def is_member(self, peer_id: str) -> bool:
        """Is this peer ID registered and active, with this exact peer ID, on chain?

        Raises LedgerError when the chain cannot answer (the caller decides what
        "unknown" means for it: the transport refuses for now, nothing is final).
        """
        now = time.monotonic()
        if self._members.get(peer_id, 0.0) > now:
            return True
        try:
            address = eth_address_from_peer_id(peer_id)
        except ValueError:
            return False
        info = self.ledger.node_info(address)
        ok = info is not None and info.active and info.peer_id == peer_id_to_bytes(peer_id)
        if ok:
            self._members[peer_id] = now + MEMBERSHIP_TTL
        return ok

    def active_nodes(self) -> int:
        """How many nodes are registered and active (at least 1), as of the last refresh()."""
        return self._active

    def mean_sample_count(self, default: float) -> float:
        """Mean capped sample count of all contributions recorded so far (`default`
        before any), as of the last refresh()."""
        total, count = self._samples
        return total / count if count else default

    def network(self, default: float) -> Network:
        """The merge normaliser: active nodes and the mean capped sample count on chain
        (`default`, e.g. our own count, before anything is recorded: a peer merging alone
        then takes 1/N of its step). Both are cached by refresh(): no chain call here, and
        every peer that read the same blocks has the same numbers."""
        return Network(self.active_nodes(), self.mean_sample_count(default))

    def refresh(self) -> list[Recorded]:
        """Read the contributions recorded since the last call (incremental), and the
        registry at most every MEMBERSHIP_TTL s; return those new records.

        The peer calls this every chain_poll from a background task, never in the merge
        path: every peer must see the same mean, which moves fast while the first
        contributions arrive, but a merge must not wait on a chain that is down. The
        records returned are every delta the peer must merge, whether or not gossip
        announced it (gossip does not replay announcements to a peer that was down, or
        after a partition): the chain, not timing, decides what every peer merges.
        """
        new: list[Recorded] = []
        try:
            head = self.ledger.block_number()
            now = time.monotonic()
            if now >= self._fresh_until:
                self._read_registry()
                self._fresh_until = now + MEMBERSHIP_TTL
            total, count = self._samples
            events = self.ledger.contributions(from_block=self._next_block, to_block=head)
            if any(e.node not in self._peer_ids for e in events):
                self._read_registry()  # a node registered since the last read
            for event in events:
                total += min(event.sample_count, self._caps.get(event.node, 0))
                count += 1
                peer_id = self._peer_ids.get(event.node)
                if peer_id is not None:
                    new.append(Recorded(event.delta_hash, peer_id, event.round, event.node))
            self._samples = (total, count)
            self._next_block = head + 1
        except LedgerError:
            pass  # keep what is known while the chain is away; read the same blocks next time
        return new

    def _read_registry(self) -> None:
        nodes = self.ledger.registered_nodes()
        self._active = max(1, sum(1 for n in nodes if n.active))
        self._caps = {n.address: n.sample_cap for n in nodes}
        self._peer_ids = {n.address: pid for n in nodes if (pid := _peer_id_or_none(n.peer_id)) is not None}

    def _cap(self, address: str) -> int:
        """The node's sample cap (one call if the registry cache does not know it yet)."""
        if address not in self._caps:
            info = self.ledger.node_info(address)
            self._caps[address] = info.sample_cap if info is not None else 0
        return self._caps[address]

    def verify(self, delta_hash: bytes, peer_id: str) -> Verified | str:
        """The record of `delta_hash` if the node behind `peer_id` recorded it, else why
        not ("not-recorded": maybe not yet; "wrong-author": for good). Raises LedgerError
        when the chain cannot answer."""
        ref = self.ledger.contribution(delta_hash)
        if ref is None:
            return "not-recorded"
        if ref.author != eth_address_from_peer_id(peer_id):
            return "wrong-author"
        return Verified(ref.author, ref.round, min(ref.sample_count, self._cap(ref.author)))


def _peer_id_or_none(raw: bytes) -> str | None:
    """The peer ID the admin registered, or None if it is not one (nobody can dial it)."""
    try:
        return peer_id_from_bytes(raw)
    except MedgossipError:
        return None
