"""Verdicts on uploaded proofs, as JSON-ready dicts for the verify endpoints.

One proof against one contribution is checked against the index's copy of its
`ContributionRecorded` record (data root, block, author): the page never scans the
chain. A custodian's proof folder is `node.audit.verify_audit`'s job, which reads the
chain itself (the node's whole list of contributions since the withdrawal).

A proof that does not hold, or a file that is not a proof, is a verdict (`ok: false`
and why), not an error: the page shows it inline like a good one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.explorer.uploads import Uploaded

if TYPE_CHECKING:
    from node.audit import VerifyReport

__all__ = ["contribution_verdict", "report_json"]


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _obeyed_withdrawal(subject_info: Mapping[str, Any], node: str) -> int | None:
    """The first block at which `node` had to stop using the subject: a withdrawal by
    token, or by the node itself as custodian (DESIGN.md, trust model)."""
    blocks = [
        int(w["block"]) for w in subject_info.get("withdrawals", [])
        if w.get("by_token") or str(w.get("by", "")).lower() == node.lower()
    ]
    return min(blocks) if blocks else None


def contribution_verdict(
    upload: Uploaded, record: Mapping[str, Any], subject_of: Any,
) -> dict[str, Any]:
    """Check one format-1 proof file against `record` (queries.contribution's dict).

    `subject_of(commitment_hex)` returns queries.subject's dict, to tell whether an
    inclusion came after the subject's withdrawal (a violation).
    """
    from node.proofs import ProofFormatError, ProofInvalid, check, load_proof

    verdict: dict[str, Any] = {"file": upload.name, "ok": False, "kind": None, "subject": None,
                               "violation": False, "withdrawal_block": None}
    try:
        proof = load_proof(upload.path)
    except ProofFormatError as exc:
        return {**verdict, "result": "not a format-1 proof file: " + str(exc).removeprefix(f"{upload.path}: ")}
    subject = _hex(proof.subject)
    verdict.update(kind=proof.kind, subject=subject)
    recorded_delta, recorded_root = str(record["delta_hash"]).lower(), str(record["data_root"]).lower()
    if _hex(proof.delta_hash) != recorded_delta:
        return {**verdict, "result": f"the proof is for contribution {_hex(proof.delta_hash)}, not this one ({recorded_delta})"}
    if _hex(proof.data_root) != recorded_root:
        return {**verdict, "result": f"root mismatch: the proof's dataRoot {_hex(proof.data_root)} is not the "
                                     f"recorded one, {recorded_root}"}
    try:
        check(proof)
    except ProofInvalid as exc:
        return {**verdict, "result": f"the proof does not hold: {exc}"}
    withdrawn_at = _obeyed_withdrawal(subject_of(subject), str(record["node"]))
    verdict.update(ok=True, withdrawal_block=withdrawn_at)
    if proof.kind == "exclusion":
        return {**verdict, "result": f"holds: subject {subject} was NOT used in this contribution"}
    if withdrawn_at is not None and int(record["block"]) >= withdrawn_at:
        return {**verdict, "violation": True,
                "result": f"holds, and it is a VIOLATION: subject {subject} was used in this contribution "
                          f"(block {record['block']}) after its withdrawal in block {withdrawn_at}"}
    return {**verdict, "result": f"holds: subject {subject} was used in this contribution"}


def report_json(report: VerifyReport, uploads: Sequence[Uploaded]) -> dict[str, Any]:
    """verify_audit's report with the client's file names instead of temporary paths."""
    names = {str(u.path): u.name for u in uploads}
    w = report.withdrawal
    return {
        "ok": report.ok,
        "node": report.node,
        "subject": _hex(report.subject),
        "withdrawal": None if w is None else {
            "by": w.by, "by_token": w.by_token, "block": w.block_number, "tx_hash": w.tx_hash},
        "since_block": report.since_block,
        "proofs": [
            {"file": names.get(c.file, Path(c.file).name),
             "delta_hash": None if c.delta_hash is None else _hex(c.delta_hash),
             "round": c.round, "block": c.block, "kind": c.kind, "ok": c.ok, "result": c.result}
            for c in report.checks
        ],
        "missing": [{"delta_hash": _hex(m.delta_hash), "round": m.round, "block": m.block} for m in report.missing],
        "summary": _named(report.summary, names),
    }


def _named(text: str, names: Mapping[str, str]) -> str:
    for path, name in names.items():
        text = text.replace(path, name)
    return text
