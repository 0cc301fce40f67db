"""Errors of node.audit (drawn in the project's tree in node/errors.py).

    NodeError
    └── AuditError   a prove or verify that cannot run: no audit record for a recorded
                     contribution, no withdrawal and no since-block, a malformed
                     index.json, no proof file given ...

A proof that does not hold is not an exception here: `verify_audit` reports it as data
(one `ProofCheck` per file), so that every bad file is named, not only the first.
"""

from __future__ import annotations

from node.errors import NodeError

__all__ = ["AuditError"]


class AuditError(NodeError):
    """An audit command cannot run; the message says why and what to do."""
