"""verify_audit: proof files + the chain -> a verdict on each file and on coverage.

Needs nothing but the files and a JSON-RPC endpoint. Each proof is checked against the
`ContributionRecorded` event of its delta hash (data root, author, block) and locally
(`node.proofs.check`); then the node's contributions on chain from the since-block on
must each have a proof among the files, so a custodian cannot hide a round by leaving
its proof out. The withdrawal is re-read from the chain; index.json is used only to
learn the node and subject, and its sinceBlock only if it is earlier (stricter).

A bad file is a failed `ProofCheck` (data), not an exception, so every bad file is
named; `AuditError` is for a verification that cannot run at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from node.audit.chain import node_contributions, same_address, withdrawal_of
from node.audit.errors import AuditError
from node.audit.index import INDEX_FORMAT, INDEX_NAME, AuditIndex, hex0x

if TYPE_CHECKING:
    from contracts.ledger import AuditLedger
    from contracts.records import ConsentWithdrawn, ContributionRecorded
    from node.proofs import Proof

__all__ = ["MissingProof", "ProofCheck", "VerifyReport", "verify_audit"]


@dataclass(frozen=True)
class ProofCheck:
    """The verdict on one proof file; the chain fields are None when unknown."""

    file: str
    delta_hash: bytes | None
    round: int | None
    block: int | None
    kind: str | None
    ok: bool
    result: str


@dataclass(frozen=True)
class MissingProof:
    """A contribution of the node from the since-block on with no proof among the files."""

    delta_hash: bytes
    round: int
    block: int


@dataclass(frozen=True)
class VerifyReport:
    node: str
    subject: bytes
    withdrawal: ConsentWithdrawn | None
    since_block: int
    checks: tuple[ProofCheck, ...]
    missing: tuple[MissingProof, ...]
    proved_at_block: int | None = None
    """the head when the folder was made (index.json): later contributions need new proofs."""

    @property
    def ok(self) -> bool:
        """Every proof holds and every contribution from the since-block on is covered."""
        return all(c.ok for c in self.checks) and not self.missing

    @property
    def summary(self) -> str:
        failed = sum(not c.ok for c in self.checks)
        exclusions = sum(c.ok and c.kind == "exclusion" for c in self.checks)
        inclusions = sum(c.ok and c.kind == "inclusion" for c in self.checks)
        verdict = "PASS" if self.ok else "FAIL"
        return (
            f"{verdict}: {len(self.checks)} proofs of node {self.node} for subject {hex0x(self.subject)} "
            f"from block {self.since_block}: {exclusions} exclusions hold, {inclusions} inclusions "
            f"before it hold, {failed} failed, {len(self.missing)} contribution(s) without a proof"
        )


def verify_audit(ledger: AuditLedger, inputs: Sequence[Path], subject: bytes | None = None) -> VerifyReport:
    """Verify proof files (folders are read whole: index.json and every other .json).

    `subject`, when given, is the subject the proofs must be about (`consent status`).
    """
    from node.proofs import ProofFormatError, load_proof

    index_path, proof_paths = _collect(inputs)
    index = AuditIndex.load(index_path) if index_path is not None else None
    loaded: list[tuple[Path, Proof]] = []
    checks: list[ProofCheck] = []
    for path in proof_paths:
        try:
            loaded.append((path, load_proof(path)))
        except ProofFormatError as exc:  # its message starts with the path: the check names it
            checks.append(ProofCheck(str(path), None, None, None, None, False, str(exc).removeprefix(f"{path}: ")))
    if index is None and not loaded:
        raise AuditError("no readable proof and no index.json among the inputs: nothing to verify")

    if index is not None:
        _check_same_chain(ledger, index, index_path)
    subject = _subject(subject, index, loaded)
    node = index.node if index is not None else _node_from_proofs(ledger, loaded)
    head = ledger.block_number()
    withdrawal = withdrawal_of(ledger, subject, node)
    since_block = _since_block(withdrawal, index, subject)
    events = node_contributions(ledger, node, head)

    checks += [_check_one(ledger, path, proof, subject, node, since_block, events) for path, proof in loaded]
    proved = {proof.delta_hash for _, proof in loaded}
    missing = tuple(
        MissingProof(e.delta_hash, e.round, e.block_number)
        for e in events.values() if e.block_number >= since_block and e.delta_hash not in proved
    )
    checks.sort(key=lambda c: (c.block if c.block is not None else -1, c.file))
    proved_at = index.proved_at_block if index is not None else None
    return VerifyReport(node, subject, withdrawal, since_block, tuple(checks), missing, proved_at)


def _check_one(
    ledger: AuditLedger, path: Path, proof: Proof, subject: bytes, node: str, since_block: int,
    events: dict[bytes, ContributionRecorded],
) -> ProofCheck:
    from node.proofs import ProofInvalid, check

    def verdict(ok: bool, result: str, event: ContributionRecorded | None = None) -> ProofCheck:
        round_, block = (event.round, event.block_number) if event is not None else (None, None)
        return ProofCheck(str(path), proof.delta_hash, round_, block, proof.kind, ok, result)

    if proof.subject != subject:
        return verdict(False, f"proof is for subject {hex0x(proof.subject)}, not {hex0x(subject)}")
    event = events.get(proof.delta_hash)
    if event is None:
        ref = ledger.contribution(proof.delta_hash)
        if ref is None:
            return verdict(False, f"delta hash {hex0x(proof.delta_hash)} is not recorded on chain")
        return verdict(False, f"delta hash {hex0x(proof.delta_hash)} was recorded by {ref.author} "
                              f"(round {ref.round}), not by node {node}")
    if proof.data_root != event.data_root:
        return verdict(False, f"root mismatch: the proof's dataRoot {hex0x(proof.data_root)} is not the "
                              f"one recorded on chain, {hex0x(event.data_root)}", event)
    try:
        check(proof)
    except ProofInvalid as exc:
        return verdict(False, f"proof does not hold: {exc}", event)
    if proof.kind == "inclusion":
        if event.block_number >= since_block:
            return verdict(False, f"VIOLATION: the subject was used in round {event.round} at block "
                                  f"{event.block_number}, at or after block {since_block}", event)
        return verdict(True, "holds: used before the withdrawal", event)
    return verdict(True, "holds: not used", event)


def _collect(inputs: Sequence[Path]) -> tuple[Path | None, list[Path]]:
    """index.json (at most one) and the proof files, from folders and files."""
    indexes: list[Path] = []
    proofs: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            indexes += [item / INDEX_NAME] if (item / INDEX_NAME).is_file() else []
            proofs += sorted(p for p in item.glob("*.json") if p.name != INDEX_NAME)
        elif item.is_file():
            (indexes if _is_index(item) else proofs).append(item)
        else:
            raise AuditError(f"{item} does not exist: give proof files or the folder `audit prove` wrote")
    if len(set(indexes)) > 1:
        raise AuditError(f"more than one index.json among the inputs ({', '.join(map(str, indexes))}): verify one folder at a time")
    return (indexes[0] if indexes else None), list(dict.fromkeys(proofs))


def _is_index(path: Path) -> bool:
    if path.name == INDEX_NAME:
        return True
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == INDEX_FORMAT  # type: ignore[no-any-return]
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False  # load_proof will say what is wrong with it


def _check_same_chain(ledger: AuditLedger, index: AuditIndex, path: Path | None) -> None:
    if not same_address(index.contract, ledger.address) or index.chain_id != ledger.chain_id:
        raise AuditError(
            f"{path} is for contract {index.contract} on chain {index.chain_id}, but you are verifying "
            f"against {ledger.address} on chain {ledger.chain_id}: pass the index's --rpc/--contract"
        )


def _subject(given: bytes | None, index: AuditIndex | None, loaded: list[tuple[Path, Proof]]) -> bytes:
    claimed = index.subject if index is not None else loaded[0][1].subject
    if given is not None and given != claimed:
        raise AuditError(f"the proofs are for subject {hex0x(claimed)}, not {hex0x(given)}")
    return claimed


def _node_from_proofs(ledger: AuditLedger, loaded: list[tuple[Path, Proof]]) -> str:
    """Without index.json: the author of the first proof whose hash is on chain."""
    for _, proof in loaded:
        ref = ledger.contribution(proof.delta_hash)
        if ref is not None:
            return ref.author
    raise AuditError("no index.json, and no proof's delta hash is recorded on chain: cannot tell whose proofs these are")


def _since_block(withdrawal: ConsentWithdrawn | None, index: AuditIndex | None, subject: bytes) -> int:
    blocks = [withdrawal.block_number] if withdrawal is not None else []
    blocks += [index.since_block] if index is not None else []
    if not blocks:
        raise AuditError(
            f"subject {hex0x(subject)} is not withdrawn on chain and there is no index.json with a "
            "sinceBlock: there is no block to verify exclusion from"
        )
    return min(blocks)
