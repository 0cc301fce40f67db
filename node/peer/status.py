"""`PeerStatus`: the one definition of what a peer reports about itself.

The peer writes it to `status.json` after every round and when it stops; `medgossip
node status`, the demo's live table, the test harness and the Prometheus exporter all
read this class, never a dict with string keys. `Counters` are the running totals the
peer keeps while it runs; a status is a snapshot of them and of the node's state.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gossip.files import atomic_write
from node.errors import PeerError

if TYPE_CHECKING:
    from node.checkpoint import JournalEntry  # imports torch: `node status` must not
    from node.peer.loop import Peer

STATUS_FILE = "status.json"


@dataclass
class Counters:
    """What the peer counts while it runs (only trio tasks change these)."""

    dropped: dict[str, int] = field(default_factory=dict)
    merged: int = 0
    clipped: int = 0
    recorded: int = 0
    withdrawals_applied: int = 0
    withdrawals_ignored: int = 0
    """withdrawals by commitment sent by another node: on chain, not obeyed (DESIGN.md)."""
    excluded_images: int = 0
    train_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


@dataclass(frozen=True)
class LastContribution:
    round: int
    delta_hash: str
    status: str
    tx_hash: str


PAUSED = "paused"
"""the start of `PeerStatus.training` while backpressure pauses training."""
BUDGET_SPENT = "privacy budget spent"
"""`PrivacyBudgetStatus.state` of a peer that no longer trains: its next round would
take its lifetime epsilon over the budget the admin set for it on chain."""


@dataclass(frozen=True)
class PrivacyBudgetStatus:
    """The node's privacy budget as the peer last read it on chain (node_info), beside
    what its own accountant says. Figures are epsilon; None: not known yet."""

    state: str
    """"ok" (trains), BUDGET_SPENT (merges and serves only), or "unknown" (not read yet)."""
    budget: float | None
    recorded: float | None
    """epsilon spent as the chain sums it (the recorded per-round epsilons)."""
    next_round_total: float | None
    """the lifetime epsilon the next round would bring (None: not computed, or no DP)."""


def journal_epsilon_total(journal: list[JournalEntry]) -> float:
    """The accountant's lifetime epsilon as the journal knows it: the total after the
    last trained round (entries from before totals were journaled: the sum of rounds)."""
    if journal and journal[-1].epsilon_total is not None:
        return journal[-1].epsilon_total
    return sum(e.epsilon for e in journal)


@dataclass(frozen=True)
class PeerStatus:
    """A snapshot of one peer, as `status.json` holds it (same keys, same meaning)."""

    peer_id: str
    address: str
    pid: int
    round: int
    rounds_target: int
    finished: bool
    """every configured round is done (the peer may still linger and serve)."""
    stopped: bool
    """the process has shut down (written on the way out)."""
    peers: int
    last_contribution: LastContribution | None
    queued_records: int
    recorder: str
    """what the recorder is doing: "ok", or why contributions wait (chain down, revoked...)."""
    training: str
    """"ok"; "paused: N contributions waiting to be recorded (max_unrecorded M)" while the
    unrecorded queue is full (node.peer.backpressure); or BUDGET_SPENT. Not "ok": the peer
    only merges and serves."""
    accuracy: float
    eval_accuracy: float | None
    epsilon_total: float
    """the accountant's lifetime epsilon (what the chain's recorded total telescopes to)."""
    budget: PrivacyBudgetStatus | None
    merged_total: int
    known_unmerged: int
    """valid records on chain by other nodes, neither merged nor refused yet (fetching,
    waiting for a norm reference, or unreachable): 0 when this peer has caught up."""
    clipped_total: int
    """merged updates whose norm was clipped to the bound."""
    recorded_total: int
    withdrawn_subjects: int
    withdrawals_applied: int
    withdrawals_ignored: int
    excluded_images: int
    dropped: dict[str, int]
    gossip_dropped: dict[str, int]
    bytes_sent: int
    bytes_received: int
    train_seconds: float
    wall_seconds: float
    updated: float
    """wall-clock time (epoch seconds) this snapshot was taken."""

    def epsilon_summary(self) -> str:
        """The lifetime epsilon against the budget, one line (`node status`, the demo)."""
        budget = self.budget
        if budget is None or budget.budget is None:
            return f"{self.epsilon_total:.4f} (budget not read yet)"
        text = f"{self.epsilon_total:.4f} of {budget.budget:.4f}"
        if budget.recorded is not None and round(budget.recorded, 6) != round(self.epsilon_total, 6):
            text += f" ({budget.recorded:.4f} on chain)"
        return text + (f": {BUDGET_SPENT}" if budget.state == BUDGET_SPENT else "")

    @property
    def paused(self) -> bool:
        """Training paused by backpressure (unrecorded contributions at the bound)."""
        return self.training.startswith(PAUSED)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any, source: str = "status") -> PeerStatus:
        """Parse a status written by `to_json`; a clear PeerError if it is not one."""
        if not isinstance(raw, dict):
            raise PeerError(f"{source} is not a peer status (expected a JSON object)")
        missing = [f.name for f in fields(cls) if f.name not in raw]
        if missing:
            raise PeerError(
                f"{source} is incomplete (missing {', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}): "
                "it was written by another version or cut short; restart the peer to rewrite it"
            )
        values = {f.name: raw[f.name] for f in fields(cls)}
        last, budget = values["last_contribution"], values["budget"]
        try:
            values["last_contribution"] = None if last is None else LastContribution(**last)
            values["budget"] = None if budget is None else PrivacyBudgetStatus(**budget)
            status = cls(**values)
        except TypeError as exc:
            raise PeerError(f"{source} has a malformed field: {exc}") from exc
        if not isinstance(status.round, int) or not isinstance(status.dropped, dict):
            raise PeerError(f"{source} has a malformed field (round or dropped)")
        return status

    def save(self, folder: Path) -> None:
        atomic_write(Path(folder) / STATUS_FILE, json.dumps(self.to_json(), indent=1).encode(), mode=0o644)

    @classmethod
    def load(cls, folder: Path) -> PeerStatus | None:
        """The status in a checkpoint folder; None if no peer has written one there."""
        path = Path(folder) / STATUS_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PeerError(f"status file {path} is unreadable: {exc}") from exc
        return cls.from_json(raw, source=f"status file {path}")


def snapshot(peer: Peer) -> PeerStatus:
    """What a running (or stopped) peer reports now: its state, counters and parts."""
    stats, state, counters = peer.last_stats, peer.state, peer.counters
    budget = peer.recorder.budget.status() if peer.recorder is not None else None
    last = state.journal[-1] if state.journal else None
    if peer.backpressure.paused:
        training = peer.backpressure.state()
    else:
        training = BUDGET_SPENT if budget is not None and budget.state == BUDGET_SPENT else "ok"
    return PeerStatus(
        peer_id=peer.peer_id,
        address=peer.address,
        pid=os.getpid(),
        round=state.round,
        rounds_target=peer.config.rounds,
        finished=peer.finished,
        stopped=peer.stopped,
        peers=len(peer.net.connected_peers()) if peer.net is not None else 0,
        last_contribution=None if last is None else LastContribution(last.round, last.delta_hash, last.status, last.tx_hash),
        queued_records=len(state.queued()),
        recorder=peer.recorder.state if peer.recorder is not None else "ok",
        training=training,
        accuracy=peer.last_accuracy[0],
        eval_accuracy=peer.last_accuracy[1],
        epsilon_total=journal_epsilon_total(state.journal),
        budget=budget,
        merged_total=counters.merged,
        known_unmerged=peer.watch.unmerged() if peer.watch is not None else 0,
        clipped_total=counters.clipped,
        recorded_total=counters.recorded,
        withdrawn_subjects=len(state.withdrawn),
        withdrawals_applied=counters.withdrawals_applied,
        withdrawals_ignored=counters.withdrawals_ignored,
        excluded_images=counters.excluded_images,
        dropped=dict(counters.dropped),
        gossip_dropped=dict(stats.dropped) if stats is not None else {},
        bytes_sent=getattr(stats, "bytes_sent", 0),
        bytes_received=getattr(stats, "bytes_received", 0),
        train_seconds=round(counters.train_seconds, 3),
        wall_seconds=round(time.monotonic() - counters.started, 3),
        updated=time.time(),
    )
