"""medgossip audit prove|verify: a custodian proves, anyone verifies, that a withdrawn
subject was not used. The logic is node.audit's; this module parses and prints.

Exit codes: 0 all holds; 1 an error, or a verification that fails; 3 `prove` found a
contribution from the since-block on that used the subject (its proofs are written).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from node.cli._boundary import err, fail
from node.cli._chain import open_ledger, out, print_json, resolve_target, short
from node.cli._options import ContractAddress, DevnetFile, JsonOutput, RpcUrl

if TYPE_CHECKING:
    from node.audit import VerifyReport

app = typer.Typer(
    no_args_is_help=True,
    help="Prove (custodian) and verify (anyone) that a withdrawn subject was not used.",
)

VIOLATION_EXIT = 3
PROGRESS_FROM = 20
"""Show a progress bar from this many contributions on."""


def subject_from(token: str | None, subject: str | None) -> bytes:
    """The subject commitment from exactly one of --token / --subject (checked, no I/O)."""
    from contracts.records import parse_bytes32
    from node.data.consent import commitment_of, parse_token

    if (token is None) == (subject is None):
        fail("give exactly one of --token (the patient's token) or --subject (its commitment)")
    # The token parser's message never echoes the token, which is a secret.
    return commitment_of(parse_token(token)) if token is not None else parse_bytes32(subject or "", "--subject")


@app.command()
def prove(
    checkpoint_dir: Path = typer.Option(..., "--checkpoint-dir", help="The peer's checkpoint folder (node.json, audit/)."),
    out_dir: Path = typer.Option(..., "--out", help="New or empty folder for the proofs and index.json."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Subject commitment (64 hex)."),
    token: Optional[str] = typer.Option(None, "--token", help="The patient's consent token (64 hex) instead of --subject."),
    since_block: Optional[int] = typer.Option(None, "--since-block", min=0, help="Prove exclusion from this block on (default: the withdrawal's block)."),
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Write a subject's proofs for this node's contributions, and index.json.

    Exclusion proofs for every contribution from the withdrawal (or --since-block) on,
    inclusion proofs for earlier ones that used the subject. Run at the custodian
    hospital, on its peer's checkpoint folder. Exit 3 if a contribution from that block
    on used the subject (its inclusion proof is written: the files tell the truth).

    Example: medgossip audit prove --token 3f9c...e1 --checkpoint-dir run/node-0/checkpoint --out proofs/
    """
    from node.audit import prove_withdrawal

    commitment = subject_from(token, subject)
    target = resolve_target(devnet, rpc, contract)
    report = prove_withdrawal(open_ledger(target), commitment, checkpoint_dir, out_dir,
                              since_block=since_block, track=_progress(json_output))
    index = report.index
    if json_output:
        print_json({"folder": str(report.folder), **index.to_json()})
    else:
        table = Table(title=f"proofs of node {index.node} in {report.folder}")
        for column in ("round", "block", "delta hash", "kind", "file"):
            table.add_column(column, overflow="fold")
        for c in report.written:
            kind = f"[red]{c.kind} (VIOLATION)[/red]" if c.violation else str(c.kind)
            table.add_row(str(c.round), str(c.block), short(c.delta_hash), kind, str(c.file))
        out.print(table)
        w = index.withdrawal
        where = f"withdrawn in block {w.block} (tx {w.tx})" if w is not None else "not withdrawn on chain"
        out.print(f"subject {short(index.subject)} {where}; proofs from block {index.since_block}; "
                  f"{len(report.written)} files of {len(index.contributions)} contributions + index.json")
    if report.violations:
        first = report.violations[0]
        fail(f"broken promise: {len(report.violations)} contribution(s) from block {index.since_block} on "
             f"used the subject, first round {first.round} (delta {'0x' + first.delta_hash.hex()}, "
             f"file {first.file}); their inclusion proofs are written", code=VIOLATION_EXIT)


@app.command()
def verify(
    inputs: list[Path] = typer.Argument(..., help="The proof folder (with index.json), or proof files."),
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Verify proofs against the chain, and that none is missing.

    Each proof is checked against its ContributionRecorded event (data root, author,
    block vs the withdrawal); every contribution of the node since the withdrawal must
    have an exclusion proof. Needs only the files and a JSON-RPC endpoint.

    Exit 0 only if every proof holds and coverage is complete.

    Example: medgossip audit verify proofs/ --rpc http://127.0.0.1:8545 --contract 0x5FbD...
    """
    from node.audit import verify_audit

    target = resolve_target(devnet, rpc, contract)
    report = verify_audit(open_ledger(target), inputs)
    show_verify_report(report, json_output)


def show_verify_report(report: VerifyReport, json_output: bool) -> None:
    """Print the verdict (table or JSON); a failed verification exits 1, one stderr line
    per bad file or missing proof."""
    if json_output:
        print_json(verify_json(report))
    else:
        table = Table(title=f"proofs of node {report.node}")
        for column in ("proof file", "delta hash", "round", "block", "kind", "result"):
            table.add_column(column, overflow="fold")
        for c in report.checks:
            result = f"[green]{escape(c.result)}[/green]" if c.ok else f"[red]{escape(c.result)}[/red]"
            table.add_row(escape(Path(c.file).name), short(c.delta_hash) if c.delta_hash else "-",
                          _opt(c.round), _opt(c.block), c.kind or "-", result)
        for m in report.missing:
            table.add_row("[red](missing)[/red]", short(m.delta_hash), str(m.round), str(m.block),
                          "-", "[red]no exclusion proof[/red]")
        out.print(table)
        out.print(report.summary, soft_wrap=True)
    exit_unless_ok(report)


def exit_unless_ok(report: VerifyReport) -> None:
    """Nothing if the verification passed; else one stderr line per bad file or
    missing proof, and exit 1."""
    if report.ok:
        return
    for c in report.checks:
        if not c.ok:
            line = escape(" ".join(f"{Path(c.file).name}: {c.result}".split()))
            err.print(f"[red]error:[/red] {line}", soft_wrap=True)
    for m in report.missing:
        later = report.proved_at_block is not None and m.block > report.proved_at_block
        hint = (f": recorded after this folder was made (block {report.proved_at_block}); "
                "the custodian must run `audit prove` again") if later else ""
        err.print(f"[red]error:[/red] missing exclusion proof for contribution 0x{m.delta_hash.hex()} "
                  f"(round {m.round}, block {m.block}){hint}", soft_wrap=True)
    raise typer.Exit(1)


def verify_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "node": report.node,
        "subject": report.subject,
        "withdrawal": report.withdrawal,
        "since_block": report.since_block,
        "proofs": list(report.checks),
        "missing": list(report.missing),
        "summary": report.summary,
    }


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _progress(quiet: bool) -> Any:
    """A rich progress bar on stderr for long runs (never with --json)."""
    from rich.console import Console
    from rich.progress import track

    def run(items: Sequence[Any], description: str) -> Iterable[Any]:
        if quiet or len(items) < PROGRESS_FROM:
            return items
        return track(items, description=description, console=Console(stderr=True), transient=True)

    return run
