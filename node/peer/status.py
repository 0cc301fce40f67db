"""`PeerStatus`: the one definition of what a peer reports about itself.

The peer writes it to `status.json` after every round and when it stops; `medgossip
node status`, the demo's live table, the test harness and the Prometheus exporter all
read this class, never a dict with string keys. `Counters` are the running totals the
peer keeps while it runs; a status is a snapshot of them and of the node's state.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gossip.files import atomic_write
from node.errors import PeerError

if TYPE_CHECKING:
    from node.checkpoint import JournalEntry  # imports torch: `node status` must not

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
    accuracy: float
    eval_accuracy: float | None
    epsilon_total: float
    """the accountant's lifetime epsilon (what the chain's recorded total telescopes to)."""
    budget: PrivacyBudgetStatus | None
    merged_total: int
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
