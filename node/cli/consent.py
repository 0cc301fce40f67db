"""medgossip consent withdraw|status: a data subject's consent withdrawal, on chain, and
its state (with --proofs, the custodian's proofs that the subject was not used since)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from node.cli._boundary import fail
from node.cli._chain import (
    ChainTarget,
    node_names,
    open_ledger,
    out,
    print_json,
    read_key_file,
    resolve_target,
)
from node.cli._options import ContractAddress, DevnetFile, JsonOutput, RpcUrl

app = typer.Typer(
    no_args_is_help=True,
    help="Withdraw a data subject's consent: by the patient's token, or by the custodian node.",
)


@app.command()
def withdraw(
    token: Optional[str] = typer.Option(None, "--token", help="The patient's consent token (64 hex). Revealed on chain; commitment = keccak256(token)."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Subject commitment (64 hex), withdrawn by the custodian node (--key or --node)."),
    key: Optional[Path] = typer.Option(None, "--key", help="Key FILE of the sender: the custodian node, or a funded relayer for --token."),
    node: Optional[str] = typer.Option(None, "--node", help="Custodian as a devnet node name (node-0), using its key from devnet.json."),
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Send the withdrawal, wait for it to be mined, print tx hash, block and event.

    A patient has no funded account: with --token the transaction is relayed by
    --key, or on a devnet by its relayer account. Anyone may relay a token.

    Examples:
      medgossip consent withdraw --token 3f9c...e1
      medgossip consent withdraw --subject 0x8a1b...07 --node node-0
    """
    from contracts.records import parse_bytes32
    from node.data.consent import parse_token

    # Every argument is checked before any file or chain is touched.
    if (token is None) == (subject is None):
        fail("give exactly one of --token (patient) or --subject (custodian node)")
    if subject is not None and (key is None) == (node is None):
        fail("--subject needs the custodian's key: exactly one of --key FILE or --node NAME")
    if token is not None and node is not None:
        fail("--node is for custodian withdrawals (--subject); a token is relayed with --key")
    # The token parser's message never echoes the token, which is a secret.
    by_token = token is not None
    value = parse_token(token) if token is not None else parse_bytes32(subject or "", "--subject")

    target = resolve_target(devnet, rpc, contract)
    ledger = open_ledger(target, _sender_key(target, key, node))
    result = (ledger.withdraw_consent_with_token(value) if by_token
              else ledger.withdraw_consent(value))
    event = result.event
    if json_output:
        print_json({"tx_hash": result.tx_hash, "block_number": result.block_number,
                    "gas_used": result.gas_used, "event": event})
        return
    out.print(f"[green]consent withdrawn[/green]  tx {result.tx_hash}  block {result.block_number}")
    if event is not None:
        table = Table(title="ConsentWithdrawn")
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for field_name, value in vars(event).items():
            table.add_row(field_name, "0x" + value.hex() if isinstance(value, bytes) else str(value))
        out.print(table)


def _sender_key(target: ChainTarget, key: Path | None, node: str | None) -> str:
    """The key that signs: --key FILE, a devnet node's key, or the devnet relayer's."""
    if key is not None:
        return read_key_file(key)
    if node is not None:
        if target.devnet is None:
            fail("--node NAME needs a devnet.json (use --key FILE otherwise)")
        try:
            return target.devnet.node(node).private_key
        except KeyError as exc:
            fail(str(exc.args[0]))
    if target.devnet is None:
        fail("--token without a devnet needs --key FILE (a funded relayer account)")
    return target.devnet.relayer_key


@app.command()
def status(
    token: Optional[str] = typer.Option(None, "--token", help="The patient's consent token (64 hex)."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Subject commitment (64 hex) instead of --token."),
    proofs: Optional[Path] = typer.Option(None, "--proofs", help="A folder of `audit prove`: verify it too (as `audit verify`)."),
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Whether the subject's consent is withdrawn: in which block, by whom, and how.

    A withdrawal by token (anyone relaying the patient's token) is obeyed by every peer;
    one by commitment is obeyed only by the peer that sent it, as the custodian.
    With --proofs, exits 0 only if the proofs hold and cover every contribution since.

    Example: medgossip consent status --token 3f9c...e1 --proofs proofs/
    """
    from node.audit import verify_audit
    from node.cli.audit import exit_unless_ok, show_verify_report, subject_from, verify_json

    commitment = subject_from(token, subject)
    target = resolve_target(devnet, rpc, contract)
    ledger = open_ledger(target)
    events = ledger.withdrawals(subject=commitment)
    report = verify_audit(ledger, [proofs], subject=commitment) if proofs is not None else None
    if json_output:
        print_json({"subject": commitment, "withdrawn_by_token": any(e.by_token for e in events),
                    "withdrawn_for": sorted({e.by for e in events if not e.by_token}), "withdrawals": events,
                    **({"proofs": verify_json(report)} if report is not None else {})})
    else:
        names = node_names(target)
        if not events:
            out.print(f"subject 0x{commitment.hex()}: [green]consent in force[/green] (no withdrawal on chain)")
        for event in events:
            who = names.get(event.by, event.by)
            how = ("with the patient's token: binds every node" if event.by_token
                   else "by commitment: binds that node only (obeyed if it is the custodian)")
            out.print(f"subject 0x{commitment.hex()}: [yellow]withdrawn[/yellow] in block "
                      f"{event.block_number} (tx {event.tx_hash}) by {who}, {how}", soft_wrap=True)
    if report is not None and json_output:
        exit_unless_ok(report)
    elif report is not None:
        show_verify_report(report, json_output=False)
