"""medgossip ledger query: the audit trail (registered nodes with their sample caps and
privacy budgets, contributions and consent withdrawals)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from node.cli._boundary import fail
from node.cli._chain import (
    check_node_ref,
    node_names,
    open_ledger,
    out,
    print_json,
    resolve_node_address,
    resolve_target,
    short,
)
from node.cli._options import ContractAddress, DevnetFile, JsonOutput, RpcUrl

if TYPE_CHECKING:
    from contracts.ledger import AuditLedger
    from contracts.records import NodeInfo

app = typer.Typer(
    no_args_is_help=True,
    help="Read the audit ledger: who contributed which delta in which round, and which "
    "subjects withdrew consent.",
)


@app.command()
def query(
    node: Optional[str] = typer.Option(None, "--node", help="Only contributions of this node (address, or dev node name like node-0)."),
    round: Optional[int] = typer.Option(None, "--round", min=0, help="Only contributions of this round."),
    delta: Optional[str] = typer.Option(None, "--delta", help="Only the contribution with this delta hash (64 hex)."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Only withdrawals of this subject commitment (64 hex)."),
    since_block: int = typer.Option(0, "--since-block", min=0, help="Only events from this block on."),
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """List the registered nodes, ContributionRecorded and ConsentWithdrawn events, filtered.

    Contribution filters (--node/--round/--delta) show only the nodes (--node: that one)
    and contributions, --subject only withdrawals; with no filter all are listed. A
    node's sample cap bounds each of its contributions, its epsilon budget the sum of
    their epsilons (shown as spent / budget); a revoked node's records all precede its
    revocation block.

    Example: medgossip ledger query --node node-1 --round 3
    """
    from contracts.records import parse_bytes32

    delta_hash = parse_bytes32(delta, "--delta") if delta is not None else None
    subject_c = parse_bytes32(subject, "--subject") if subject is not None else None
    if node is not None:
        check_node_ref(node, "--node")
    want_contrib = subject_c is None or any(x is not None for x in (node, round, delta))
    want_withdraw = not any(x is not None for x in (node, round, delta)) or subject_c is not None

    target = resolve_target(devnet, rpc, contract)
    node_address = resolve_node_address(target, node) if node is not None else None
    ledger = open_ledger(target)
    head = ledger.block_number()
    contributions = (
        ledger.contributions(node=node_address, round=round, delta_hash=delta_hash,
                             from_block=since_block, to_block=head)
        if want_contrib else []
    )
    withdrawals = (
        ledger.withdrawals(subject=subject_c, from_block=since_block, to_block=head)
        if want_withdraw else []
    )
    nodes = _nodes(ledger, node_address) if want_contrib else []
    if json_output:
        print_json({
            "contract": ledger.address,
            "head_block": head,
            "nodes": nodes,
            "contributions": contributions,
            "withdrawals": withdrawals,
        })
        return
    names = node_names(target)
    if want_contrib:
        _print_nodes(nodes, names)
    if want_contrib:
        table = Table(title=f"contributions ({len(contributions)})")
        for column in ("block", "node", "round", "delta hash", "samples", "epsilon", "base model", "data root"):
            table.add_column(column, overflow="fold")
        for c in contributions:
            table.add_row(str(c.block_number), names.get(c.node, short(c.node)), str(c.round),
                          short(c.delta_hash), str(c.sample_count), f"{c.epsilon_spent:.6g}",
                          short(c.base_model_hash), short(c.data_root))
        out.print(table)
    if want_withdraw:
        table = Table(title=f"consent withdrawals ({len(withdrawals)})")
        for column in ("block", "subject", "by", "how"):
            table.add_column(column, overflow="fold")
        for w in withdrawals:
            table.add_row(str(w.block_number), short(w.subject), names.get(w.by, short(w.by)),
                          "patient token" if w.by_token else "custodian node")
        out.print(table)
    out.print(f"[dim]head block {head}; full hashes with --json[/dim]")
    if delta is not None and not contributions:
        fail(f"delta {delta} is not recorded", code=4)


def _nodes(ledger: AuditLedger, address: str | None) -> list[NodeInfo]:
    """Every registered node, or only `address` (none if it was never registered)."""
    if address is None:
        return ledger.registered_nodes()
    info = ledger.node_info(address)
    return [info] if info is not None else []


def _print_nodes(nodes: list[NodeInfo], names: dict[str, str]) -> None:
    from gossip.identity import peer_id_from_bytes

    table = Table(title=f"nodes ({len(nodes)})")
    for column in ("node", "status", "sample cap", "epsilon spent / budget", "last round",
                   "revoked at block", "peer ID"):
        table.add_column(column, overflow="fold")
    for n in nodes:
        table.add_row(
            names.get(n.address, n.address), "active" if n.active else "revoked", str(n.sample_cap),
            f"{n.epsilon_spent:.6g} / {n.epsilon_budget:.6g}",
            str(n.last_round) if n.last_round else "-",
            "-" if n.revoked_at_block is None else str(n.revoked_at_block),
            short(peer_id_from_bytes(n.peer_id), 8),
        )
    out.print(table)
