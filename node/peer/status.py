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
from typing import Any

from gossip.files import atomic_write
from node.errors import PeerError

STATUS_FILE = "status.json"


@dataclass
class Counters:
    """What the peer counts while it runs (only trio tasks change these)."""

    dropped: dict[str, int] = field(default_factory=dict)
    merged: int = 0
    clipped: int = 0
    recorded: int = 0
    withdrawals_applied: int = 0
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
    merged_total: int
    clipped_total: int
    """merged updates whose norm was clipped to the bound."""
    recorded_total: int
    withdrawn_subjects: int
    withdrawals_applied: int
    excluded_images: int
    dropped: dict[str, int]
    gossip_dropped: dict[str, int]
    bytes_sent: int
    bytes_received: int
    train_seconds: float
    wall_seconds: float
    updated: float
    """wall-clock time (epoch seconds) this snapshot was taken."""

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
        last = values["last_contribution"]
        try:
            values["last_contribution"] = None if last is None else LastContribution(**last)
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
