"""prove_withdrawal: a custodian's checkpoint folder -> proof files and index.json.

From the subject's withdrawal block B (or a given block) on, every contribution of the
node gets an exclusion proof; a contribution from B on whose leaves hold the subject is
a broken promise: its inclusion proof is written anyway (the files tell the truth) and
the report marks it. Earlier contributions that used the subject get inclusion proofs,
so the history is told whole. The chain decides which contributions are the node's: one
on chain without an audit record in the folder stops everything (it cannot be proved).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.audit.chain import author_of, node_contributions, withdrawal_of
from node.audit.errors import AuditError
from node.audit.index import AuditIndex, IndexEntry, Withdrawal, hex0x
from node.audit.records import AuditRecord, read_audit_records, recorded_hashes

if TYPE_CHECKING:
    from contracts.ledger import AuditLedger
    from contracts.records import ContributionRecorded

__all__ = ["ProveReport", "Track", "prove_withdrawal"]

Track = Callable[[Sequence[Any], str], Iterable[Any]]
"""Wraps the per-contribution loop (e.g. rich.progress.track); the default does nothing."""


def _no_progress(items: Sequence[Any], description: str) -> Iterable[Any]:
    return items


@dataclass(frozen=True)
class ProveReport:
    """What `prove_withdrawal` wrote: the index (also on disk) and where."""

    index: AuditIndex
    folder: Path

    @property
    def violations(self) -> list[IndexEntry]:
        """Contributions from the since-block on that used the subject."""
        return [c for c in self.index.contributions if c.violation]

    @property
    def written(self) -> list[IndexEntry]:
        return [c for c in self.index.contributions if c.file is not None]


def prove_withdrawal(
    ledger: AuditLedger,
    subject: bytes,
    checkpoint_dir: Path,
    out: Path,
    since_block: int | None = None,
    track: Track = _no_progress,
) -> ProveReport:
    """Write the proofs for `subject` of the node whose checkpoint folder this is."""
    from node.proofs import prove, write_proof

    records = read_audit_records(checkpoint_dir)
    _check_out_folder(Path(out))
    node = author_of(ledger, _candidates(checkpoint_dir, records))
    head = ledger.block_number()
    event = withdrawal_of(ledger, subject, node)
    if since_block is None:
        if event is None:
            raise AuditError(
                f"subject {hex0x(subject)} is not withdrawn on chain: give --since-block B "
                "to prove it was not used from block B on"
            )
        since_block = event.block_number
    contributions = list(node_contributions(ledger, node, head).values())
    _check_all_recorded(contributions, records, node, checkpoint_dir)

    # Every proof is made and checked against the chain before the first file is written:
    # a folder that cannot prove one contribution leaves --out untouched.
    entries: list[IndexEntry] = []
    files: dict[str, Any] = {}
    for c in track(contributions, f"proving {len(contributions)} contributions"):
        record = records[c.delta_hash]
        after = c.block_number >= since_block
        used = subject in record.subjects
        if not (after or used):
            entries.append(IndexEntry(c.delta_hash, c.round, c.block_number, None, None))
            continue
        proof = prove(record.subjects, subject, c.delta_hash)
        _check_root(proof.data_root, c, record)
        name = f"round-{c.round}-{proof.kind}.json"
        files[name] = proof
        entries.append(IndexEntry(c.delta_hash, c.round, c.block_number, proof.kind, name,
                                  violation=after and used))
    for name, proof in files.items():
        write_proof(Path(out) / name, proof)

    withdrawal = None if event is None else Withdrawal(event.block_number, event.tx_hash, event.by, event.by_token)
    index = AuditIndex(
        contract=ledger.address, chain_id=ledger.chain_id, node=node, subject=subject,
        withdrawal=withdrawal, since_block=since_block, contributions=tuple(entries), proved_at_block=head,
    )
    index.write(Path(out))
    return ProveReport(index, Path(out))


def _candidates(checkpoint_dir: Path, records: dict[bytes, AuditRecord]) -> list[bytes]:
    """Hashes to learn the node's address from: the journal's mined ones, then the audit
    records' (newest round first); a hash appears once."""
    newest_first = sorted(records.values(), key=lambda r: r.round, reverse=True)
    ordered = recorded_hashes(checkpoint_dir) + [r.delta_hash for r in newest_first]
    return list(dict.fromkeys(ordered))


def _check_out_folder(out: Path) -> None:
    """Proofs of an earlier run left in the folder would be verified with the new ones."""
    if out.exists() and not out.is_dir():
        raise AuditError(f"--out {out} is a file: give a folder for the proofs (created if absent)")
    if out.is_dir() and any(out.glob("*.json")):
        raise AuditError(f"--out {out} already holds .json files: give a new or empty folder")


def _check_all_recorded(
    contributions: list[ContributionRecorded], records: dict[bytes, AuditRecord], node: str, checkpoint_dir: Path
) -> None:
    missing = [c for c in contributions if c.delta_hash not in records]
    if missing:
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise AuditError(
            f"contribution {hex0x(first.delta_hash)} (round {first.round}, block {first.block_number}) "
            f"of node {node} has no audit record in {Path(checkpoint_dir) / 'audit'}{more}: "
            "this folder cannot prove it"
        )


def _check_root(root: bytes, c: ContributionRecorded, record: AuditRecord) -> None:
    if root != c.data_root:
        raise AuditError(
            f"{record.path} does not reproduce the data root recorded on chain for "
            f"{hex0x(c.delta_hash)} (round {c.round}): chain {hex0x(c.data_root)}, "
            f"record gives {hex0x(root)}"
        )
