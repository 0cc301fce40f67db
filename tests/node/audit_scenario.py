"""A custodian's history on a real chain (eth-tester), for the node.audit tests.

A registered node records rounds whose data roots come from node.merkle.data_root over
real leaf lists, keeping each round's audit record (and node.json's journal) in a real
checkpoint folder through CheckpointStore, as the peer does; the patient withdraws by
token between two rounds. Tests then prove and verify against the same chain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from eth_hash.auto import keccak

from contracts.ledger import AuditLedger
from node.checkpoint import CheckpointStore, JournalEntry, NodeState
from node.data.consent import commitment_of
from node.merkle import data_root

TOKEN = hashlib.sha256(b"patient-7").digest()
SUBJECT = commitment_of(TOKEN)


def commitment(i: int) -> bytes:
    return keccak(b"other-patient-%d" % i)


@dataclass
class Custodian:
    """One node and its checkpoint folder; rounds are recorded in order."""

    ledger: AuditLedger
    folder: Path
    journal: list[JournalEntry] = field(default_factory=list)
    recorded: dict[int, bytes] = field(default_factory=dict)
    """round -> delta hash."""
    blocks: dict[int, int] = field(default_factory=dict)
    """round -> block of its record."""

    @property
    def address(self) -> str:
        return self.ledger.account or ""

    @property
    def store(self) -> CheckpointStore:
        return CheckpointStore(self.folder)

    def contribute(self, round_: int, subjects: list[bytes], *, audit: bool = True) -> bytes:
        """Record round `round_` trained on `subjects`, with its audit record (unless not)."""
        delta_hash = keccak(self.address.encode() + b"delta-%d" % round_)
        root = data_root(subjects)
        result = self.ledger.record_contribution(delta_hash, keccak(b"base"), round_, len(subjects) or 1, root, 0.0)
        if audit:
            self.store.save_audit(round_, {"delta_hash": "0x" + delta_hash.hex(), "data_root": "0x" + root.hex(),
                                           "subjects": ["0x" + s.hex() for s in subjects]})
        self.journal.append(JournalEntry(round=round_, delta_hash="0x" + delta_hash.hex(), base_hash="0x" + "00" * 32,
                                         sample_count=len(subjects), data_root="0x" + root.hex(), epsilon=0.0,
                                         status="recorded", tx_hash=result.tx_hash, block=result.block_number))
        self.store.save_state(NodeState(round=round_, journal=list(self.journal)))
        self.recorded[round_] = delta_hash
        self.blocks[round_] = result.block_number
        return delta_hash


def history(custodian: Custodian, withdrawer: AuditLedger, *, late_use: bool = False) -> int:
    """Rounds 1-3 before the withdrawal (the subject in rounds 1 and 2), rounds 4-6 after
    (the subject again in round 5 if `late_use`); returns the withdrawal's block."""
    others = [commitment(i) for i in range(9)]
    custodian.contribute(1, [SUBJECT, *others[:5]])
    custodian.contribute(2, [SUBJECT, *others[2:8]])
    custodian.contribute(3, others[:4])
    block = withdrawer.withdraw_consent_with_token(TOKEN).block_number
    custodian.contribute(4, others[1:9])
    custodian.contribute(5, [*others[:3], SUBJECT] if late_use else others[:3])
    custodian.contribute(6, [])
    return block
