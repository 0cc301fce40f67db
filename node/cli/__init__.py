"""The `medgossip` command line.

One typer app; each command group lives in its own module and imports its heavy
dependencies (torch, web3, libp2p) inside the command functions, so that `--help`
stays fast. Every command runs inside one error boundary (`_boundary.py`): an expected
failure is one red line on stderr and a non-zero exit, never a traceback.

    devnet.py     medgossip devnet start|stop|status    local anvil chain (--host: reachable)
    admin.py      medgossip admin deploy|fund|register-node|set-sample-cap|revoke-node|set-genesis
    ledger.py     medgossip ledger query                the audit trail
    consent.py    medgossip consent withdraw|status     a patient's withdrawal, and its state
    audit.py      medgossip audit prove|verify          proofs that a withdrawn subject was not used
    privacy.py    medgossip privacy audit               membership inference on the peer's own model
    data.py       medgossip data ingest|make-demo|tokens  DICOM in, manifest out
    peer.py       medgossip node start|status|init|genesis-hash   the peer process
    demo.py       medgossip demo                        the whole thing on loopback
    explorer.py   medgossip explorer                    the audit trail as web pages (node.explorer)
    localnet.py   the demo's peers, anvil and data as OS processes (also used by tests)
    _boundary.py  the one error boundary: `fail`, and the root group that catches
                  MedgossipError around every command
    _options.py   --json/--devnet (= --network)/--rpc/--contract, declared once
    _addrs.py     multiaddr options checked (node init), the fixed default port 4001
    _chain.py     which chain and key a chain command uses; JSON forms of records
"""

from __future__ import annotations

import typer

from node.cli import admin, audit, consent, data, demo, devnet, explorer, ledger, peer, privacy
from node.cli._boundary import OneLineErrors

app = typer.Typer(
    name="medgossip",
    help=(
        "Blockchain-audited peer-to-peer gossip learning for medical imaging.\n\n"
        "Hospitals train one shared model on DICOM images that never leave their site; "
        "model deltas move over libp2p, and every contribution and consent withdrawal "
        "is a transaction on an Ethereum ledger."
    ),
    no_args_is_help=True,
    cls=OneLineErrors,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(devnet.app, name="devnet")
app.add_typer(admin.app, name="admin")
app.add_typer(ledger.app, name="ledger")
app.add_typer(consent.app, name="consent")
app.add_typer(audit.app, name="audit")
app.add_typer(privacy.app, name="privacy")
app.add_typer(data.app, name="data")
app.add_typer(peer.app, name="node")
app.command(name="demo")(demo.demo)
app.command(name="explorer")(explorer.explorer)


def main() -> None:
    """Console-script entry point."""
    app()
