"""medgossip devnet start|stop|status: a local anvil chain with AuditLedger deployed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from contracts.units import DEFAULT_EPSILON_BUDGET
from node.cli._boundary import fail
from node.cli._chain import DEFAULT_DEVNET_DIR, out, print_json
from node.cli._options import JsonOutput

if TYPE_CHECKING:
    from devnet.info import DevnetInfo

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "A development chain: anvil on 127.0.0.1 or --host ADDR (state kept in a file), "
        "AuditLedger deployed, dev nodes registered, all recorded in DIR/devnet.json "
        "(and DIR/network.json, without keys, for other hosts)."
    ),
)

DirOption = typer.Option(DEFAULT_DEVNET_DIR, "--dir", help="Devnet directory (devnet.json, state, log).")


@app.command()
def start(
    dir: Path = DirOption,
    port: Optional[int] = typer.Option(
        None, "--port", min=1, max=65535,
        help="RPC port (default: the recorded one, else 8545).",
    ),
    host: Optional[str] = typer.Option(
        None, "--host",
        help="IP address anvil listens on, which devnet.json's rpc_url names: an address the "
             "other hosts reach, e.g. 198.18.0.1 (default: the recorded one, else 127.0.0.1).",
    ),
    nodes: int = typer.Option(4, "--nodes", min=0, help="Number of dev nodes to register."),
    sample_cap: int = typer.Option(320, "--sample-cap", min=1, max=2**32 - 1, help="Sample cap of newly registered dev nodes (default: 10 local steps x batch 32)."),
    epsilon_budget: float = typer.Option(DEFAULT_EPSILON_BUDGET, "--epsilon-budget", min=0.0, help="Privacy budget (lifetime epsilon) of newly registered dev nodes."),
    json_output: JsonOutput = False,
) -> None:
    """Start anvil, deploy AuditLedger and register dev nodes (first run), or resume
    the recorded chain (records survive a restart). Writes DIR/devnet.json (mode 0600:
    it holds the dev keys) and DIR/network.json (no keys: give it to other hosts).

    Example: medgossip devnet start --host 198.18.0.1 --port 8545
    """
    from devnet import start_devnet
    from devnet.anvil import check_host
    from gossip.identity import peer_id_bytes_from_secret

    if host is not None:
        try:
            check_host(host)
        except ValueError as exc:
            fail(f"--host: {exc}")
    info = start_devnet(dir, nodes=nodes, port=port, peer_id_of=peer_id_bytes_from_secret,
                        sample_cap=sample_cap, epsilon_budget=epsilon_budget, host=host)
    _show(info, dir, json_output)


@app.command()
def stop(dir: Path = DirOption) -> None:
    """Stop the devnet's anvil by its recorded PID (SIGTERM; the chain state is saved)."""
    from devnet import stop_devnet

    stopped = stop_devnet(dir)
    out.print("devnet stopped" if stopped else "devnet was not running")


@app.command()
def status(
    dir: Path = DirOption,
    json_output: JsonOutput = False,
) -> None:
    """Is the devnet running, at which block, with which contract and nodes."""
    from devnet import devnet_status

    state = devnet_status(dir)
    if json_output:
        print_json({
            "running": state.running,
            "block_number": state.block_number,
            "contract_deployed": state.contract_deployed,
            **_public(state.info),
        })
        return
    verdict = "[green]running[/green]" if state.running else "[yellow]stopped[/yellow]"
    out.print(f"devnet {verdict}  block {state.block_number if state.block_number is not None else '-'}"
              f"  contract {'deployed' if state.contract_deployed else '-'}")
    _show(state.info, dir, False)
    if not state.running:
        raise typer.Exit(3)


def _public(info: DevnetInfo) -> dict[str, Any]:
    from gossip.identity import peer_id_from_bytes

    return {
        "rpc_url": info.rpc_url,
        "host": info.host,
        "chain_id": info.chain_id,
        "contract": info.contract,
        "admin": info.admin,
        "anvil_pid": info.anvil_pid,
        "state_file": info.state_file,
        "nodes": [
            {"name": n.name, "address": n.address, "peer_id": peer_id_from_bytes(n.peer_id)}
            for n in info.nodes
        ],
    }


def _show(info: DevnetInfo, dir: Path, json_output: bool) -> None:
    public = _public(info)
    if json_output:
        print_json(public)
        return
    out.print(f"rpc      {public['rpc_url']}  (chain id {public['chain_id']})")
    out.print(f"contract {public['contract']}")
    out.print(f"admin    {public['admin']}")
    out.print(f"file     {dir / 'devnet.json'}  (holds private keys)")
    if (dir / "network.json").exists():
        out.print(f"share    {dir / 'network.json'}  (no keys: for `node init --network` on other hosts)")
    table = Table(title="dev nodes")
    table.add_column("name", no_wrap=True)
    table.add_column("address", overflow="fold")
    table.add_column("peer ID", overflow="fold")
    for node in public["nodes"]:
        table.add_row(node["name"], node["address"], node["peer_id"])
    out.print(table)
