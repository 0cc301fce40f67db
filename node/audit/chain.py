"""Chain look-ups both sides share. Each is one query (one eth_getLogs range, chunked
by the binding only on very long chains), so proving or verifying 1,000 contributions
costs a handful of RPC calls, not one per proof."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.audit.errors import AuditError

if TYPE_CHECKING:
    from contracts.ledger import AuditLedger
    from contracts.records import ConsentWithdrawn, ContributionRecorded

__all__ = ["author_of", "node_contributions", "same_address", "withdrawal_of"]


def same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def withdrawal_of(ledger: AuditLedger, subject: bytes, node: str) -> ConsentWithdrawn | None:
    """The first of the subject's ConsentWithdrawn events that binds `node`, or None.

    A withdrawal by token binds every node; one by commitment binds only its sender (the
    custodian): another node's cannot bind, nor block, the custodian (DESIGN.md, "Trust
    model"). The contract allows one by token and one per node.
    """
    return next(
        (e for e in ledger.withdrawals(subject=subject) if e.by_token or same_address(e.by, node)), None
    )


def node_contributions(ledger: AuditLedger, node: str, head: int) -> dict[bytes, ContributionRecorded]:
    """Every ContributionRecorded of `node` up to block `head`, by delta hash, oldest first."""
    return {e.delta_hash: e for e in ledger.contributions(node=node, from_block=0, to_block=head)}


def author_of(ledger: AuditLedger, candidates: list[bytes]) -> str:
    """The node that recorded the first of `candidates` found on chain.

    Candidates come from the custodian's own folder (its journal's mined entries first),
    so the first hit is the custodian itself.
    """
    if not candidates:
        raise AuditError("the checkpoint folder has no audit record and no recorded round: "
                         "this peer has no contribution to prove")
    for delta_hash in candidates:
        ref = ledger.contribution(delta_hash)
        if ref is not None:
            return ref.author
    raise AuditError(
        f"none of the {len(candidates)} delta hashes in this checkpoint folder is recorded on chain: "
        "is it the right folder, and the right chain and contract?"
    )
