"""Proving, and verifying, that a withdrawn subject was not used after its withdrawal.

A custodian hospital runs `prove` on its checkpoint folder: for each of its
contributions recorded at or after the withdrawal (or a given block) it writes an
exclusion proof, and for earlier contributions that used the subject an inclusion
proof, with an `index.json`. Anyone runs `verify` on those files with nothing but a
JSON-RPC endpoint: each proof against its `ContributionRecorded` event, and the node's
whole list of contributions since the withdrawal against the files (completeness).

    errors.py   AuditError: what stops a prove or a verify from running at all
    records.py  the custodian's side: audit/round-<r>.json records and node.json
    index.py    index.json, the file that ties a folder of proofs together
    chain.py    the chain look-ups both sides share (withdrawal, a node's contributions)
    prove.py    prove_withdrawal: checkpoint folder -> proof files + index.json
    verify.py   verify_audit: proof files + chain -> one result per file, coverage

Everything takes an `AuditLedger` and paths; the command line (`node.cli.audit`) only
parses arguments and prints.
"""

from __future__ import annotations

from node.audit.errors import AuditError
from node.audit.index import INDEX_FORMAT, INDEX_NAME, AuditIndex, IndexEntry
from node.audit.prove import ProveReport, prove_withdrawal
from node.audit.verify import MissingProof, ProofCheck, VerifyReport, verify_audit

__all__ = [
    "INDEX_FORMAT",
    "INDEX_NAME",
    "AuditError",
    "AuditIndex",
    "IndexEntry",
    "MissingProof",
    "ProofCheck",
    "ProveReport",
    "VerifyReport",
    "prove_withdrawal",
    "verify_audit",
]
