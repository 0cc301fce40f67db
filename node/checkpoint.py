"""A peer's durable state: checkpoint, journal of contributions, payloads.

A round moves through three states, each made durable before the next begins, so a
peer killed at any instant resumes without recording a contribution twice or losing one:

    trained   the post-training model, codec residual and the encoded payload are on
              disk and the contribution is in the journal as "queued"
    recorded  the contribution's transaction is mined (journal entry "recorded")
    merged    peers' deltas are merged; the new model is the round's checkpoint

Layout of the checkpoint folder::

    node.json                  the commit point: round, journal, accountant, history
    round-<r>.safetensors      model (+ codec residual) at the end of round r
    trained-<r>.safetensors    model (+ residual) after training in round r, before merging
    payloads/<hash>.bin        our encoded deltas (all of them, or the last `keep_payloads`)
    audit/round-<r>.json       the subject commitments behind round r's data root (local only:
                               lets an auditor check a withdrawn subject was not used)
    status.json                what `medgossip node status` shows (node.peer.status.PeerStatus)

Every file is written with ``gossip.files.atomic_write`` (temporary name, fsync, rename,
fsync of the folder): a reader sees the old or the new version, never half of one.
Tensors use safetensors, never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from gossip.files import atomic_write
from node.errors import PeerError

FORMAT = 1
MODEL_PREFIX = "model/"
RESIDUAL_PREFIX = "residual/"


@dataclass(frozen=True)
class JournalEntry:
    """One of our contributions, from the moment it was trained."""

    round: int
    delta_hash: str
    base_hash: str
    sample_count: int
    data_root: str
    epsilon: float
    status: str = "queued"  # queued -> recorded, or queued -> rejected (for good, `reason`)
    tx_hash: str = ""
    block: int = 0
    nonce: int = 0
    """the payload header's nonce: raised when another node recorded our hash first."""
    reason: str = ""
    """why the chain rejected it for good (revoked, stale round, over the cap or budget)."""
    epsilon_total: float | None = None
    """the accountant's lifetime epsilon after this round: the recorder records the
    increase over what the chain has summed, so the chain's total telescopes to this
    (None: journaled before totals were kept; `epsilon` is recorded as it is)."""


@dataclass
class NodeState:
    """What node.json holds. Mutable on purpose: the peer updates it, then saves it."""

    round: int = 0
    """last fully completed (merged) round."""
    journal: list[JournalEntry] = field(default_factory=list)
    merged: dict[str, int] = field(default_factory=dict)
    """delta hash (hex) of a peer's contribution -> our round that merged it."""
    refused: dict[str, str] = field(default_factory=dict)
    """delta hash (hex) a peer announced -> why we will never merge it (e.g. wrong-author)."""
    accountant: Any = None
    withdrawals_block: int = 0
    """consent withdrawals up to this block are applied."""
    withdrawn: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    norms: dict[str, float] = field(default_factory=dict)
    """delta hash (hex) of a record on chain -> L2 norm of its payload (node.peer.norms)."""

    def pending_trained_round(self) -> int | None:
        """A round trained but not yet merged (the peer stopped in between)."""
        rounds = [e.round for e in self.journal if e.round > self.round]
        return max(rounds) if rounds else None

    def queued(self) -> list[JournalEntry]:
        return [e for e in self.journal if e.status == "queued"]

    def mark_rejected(self, delta_hash: str, reason: str) -> None:
        self._update(delta_hash, status="rejected", reason=reason)

    def rebound(self, old_hash: str, new_hash: str, nonce: int) -> None:
        """The contribution `old_hash` is re-encoded as `new_hash` (a fresh nonce)."""
        self._update(old_hash, delta_hash=new_hash, nonce=nonce)

    def _update(self, key: str, **changes: Any) -> None:
        for i, e in enumerate(self.journal):
            if e.delta_hash == key:
                self.journal[i] = replace(e, **changes)

    def mark_recorded(self, delta_hash: str, tx_hash: str, block: int) -> None:
        self._update(delta_hash, status="recorded", tx_hash=tx_hash, block=block)

    def snapshot(self) -> NodeState:
        """A copy to write from a worker thread while the trio tasks go on changing this one."""
        return NodeState(
            round=self.round, journal=list(self.journal), merged=dict(self.merged),
            refused=dict(self.refused), accountant=self.accountant,
            withdrawals_block=self.withdrawals_block, withdrawn=list(self.withdrawn),
            history=list(self.history), norms=dict(self.norms),
        )


class CheckpointStore:
    """Reads and writes one peer's checkpoint folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.payloads = self.folder / "payloads"

    @property
    def state_path(self) -> Path:
        return self.folder / "node.json"

    def exists(self) -> bool:
        return self.state_path.exists()

    # --- node.json --------------------------------------------------------------

    def load_state(self) -> NodeState:
        try:
            raw = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return NodeState()
        except (OSError, json.JSONDecodeError) as exc:
            raise PeerError(f"checkpoint {self.state_path} is unreadable: {exc}") from exc
        if raw.get("format") != FORMAT:
            raise PeerError(f"checkpoint {self.state_path} has format {raw.get('format')}, expected {FORMAT}")
        return NodeState(
            round=int(raw["round"]),
            journal=[JournalEntry(**e) for e in raw["journal"]],
            merged={str(k): int(v) for k, v in raw["merged"].items()},
            refused={str(k): str(v) for k, v in raw.get("refused", {}).items()},
            accountant=raw.get("accountant"),
            withdrawals_block=int(raw.get("withdrawals_block", 0)),
            withdrawn=list(raw.get("withdrawn", [])),
            history=list(raw.get("history", [])),
            norms={str(k): float(v) for k, v in raw.get("norms", {}).items()},
        )

    def save_state(self, state: NodeState) -> None:
        """Write node.json. The peer passes a snapshot (`node.peer.durable`): no other
        thread changes it while it is written."""
        raw = {"format": FORMAT, **asdict(state)}
        atomic_write(self.state_path, json.dumps(raw, indent=1).encode())

    # --- tensors ------------------------------------------------------------------

    def _tensor_path(self, kind: str, round_: int) -> Path:
        return self.folder / f"{kind}-{round_}.safetensors"

    def save_tensors(
        self,
        kind: str,
        round_: int,
        model: Mapping[str, torch.Tensor],
        residual: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        tensors = {MODEL_PREFIX + k: v.detach().cpu().contiguous() for k, v in model.items()}
        for k, v in (residual or {}).items():
            tensors[RESIDUAL_PREFIX + k] = v.detach().cpu().contiguous()
        atomic_write(self._tensor_path(kind, round_), save(tensors))

    def load_tensors(
        self, kind: str, round_: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        path = self._tensor_path(kind, round_)
        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise PeerError(f"checkpoint tensors {path} are unreadable: {exc}") from exc
        model = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
        residual = {
            k[len(RESIDUAL_PREFIX):]: v for k, v in tensors.items() if k.startswith(RESIDUAL_PREFIX)
        }
        return model, residual

    def prune(self, keep_round: int, keep_payloads: int = 0) -> None:
        """Drop tensor files of rounds before `keep_round`; keep the newest `keep_payloads`
        payloads (0: keep them all, so a peer that joins late can fetch the history)."""
        for path in self.folder.glob("*-*.safetensors"):
            try:
                round_ = int(path.stem.rsplit("-", 1)[1])
            except ValueError:
                continue
            if round_ < keep_round:
                path.unlink(missing_ok=True)
        if keep_payloads <= 0:
            return
        files = sorted(self.payloads.glob("*.bin"), key=lambda p: p.stat().st_mtime)
        for path in files[:-keep_payloads]:
            path.unlink(missing_ok=True)

    # --- payloads -----------------------------------------------------------------

    def save_payload(self, delta_hash: str, payload: bytes) -> None:
        atomic_write(self.payloads / f"{delta_hash}.bin", payload, mode=0o644)

    def load_payload(self, delta_hash: str) -> bytes | None:
        try:
            return (self.payloads / f"{delta_hash}.bin").read_bytes()
        except FileNotFoundError:
            return None

    # --- local audit trail ----------------------------------------------------------

    def save_audit(self, round_: int, record: Mapping[str, Any]) -> None:
        atomic_write(self.folder / "audit" / f"round-{round_}.json", json.dumps(record).encode())

    def load_audit(self, round_: int) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / "audit" / f"round-{round_}.json").read_text())
        except FileNotFoundError:
            return None
