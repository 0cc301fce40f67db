"""medgossip node start|status|init: the peer process and a look at it."""

from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from node.config import ENV_PREFIX, NodeConfig

app = typer.Typer(
    no_args_is_help=True,
    help="Run a peer node (train locally, gossip deltas, record on chain) and look at it.",
)
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _option_type(kind: str) -> Any:
    if "tuple" in kind:
        return Optional[list[str]]
    if kind == "int":
        return Optional[int]
    if kind == "float":
        return Optional[float]
    if "Path" in kind:
        return Optional[Path]
    return Optional[str]


def _start(config: Optional[Path], verbose: bool, **overrides: Any) -> None:
    import trio

    from contracts.errors import LedgerError
    from gossip.errors import GossipError
    from node.config import load_config
    from node.errors import NodeError
    from node.logs import setup_logging
    from node.peer import run_peer

    setup_logging(verbose)
    try:
        cfg = load_config(config, overrides)
        trio.run(run_peer, cfg)
    except (NodeError, LedgerError, GossipError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _build_start() -> Any:
    """`node start` with one flag per NodeConfig field (so every field is overridable)."""

    def start(**kwargs: Any) -> None:
        config = kwargs.pop("config")
        verbose = kwargs.pop("verbose")
        _start(config, verbose, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()})

    params = [
        inspect.Parameter(
            "config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
            default=typer.Option(None, "--config", "-c", help="TOML config file (fields as the flags below)."),
        ),
        inspect.Parameter(
            "verbose", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
            default=typer.Option(False, "--verbose", "-v", help="Debug logs."),
        ),
    ]
    for f in fields(NodeConfig):
        flag = "--" + f.name.replace("_", "-")
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, annotation=_option_type(str(f.type)),
                default=typer.Option(
                    None, flag, help=f"{f.metadata['help']} [env {ENV_PREFIX}{f.name.upper()}; default {f.default!r}]",
                    show_default=False,
                ),
            )
        )
    start.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    start.__doc__ = (
        "Start a peer: train on local consented data, record each contribution on the ledger, "
        "gossip deltas with registered peers and merge theirs after checking them against the chain. "
        "Runs until --rounds are done or SIGINT/SIGTERM; restarting resumes from the checkpoint. "
        "Settings come from --config, then MEDGOSSIP_* environment variables, then flags."
    )
    return start


app.command("start")(_build_start())


@app.command("status")
def status(
    checkpoint_dir: Path = typer.Option(Path("checkpoint"), "--checkpoint-dir", "-d", help="The peer's checkpoint folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Show a peer's round, peers, last contribution and accuracy (from its status file)."""
    from node.checkpoint import CheckpointStore
    from node.errors import PeerError

    try:
        data = CheckpointStore(checkpoint_dir).read_status()
    except PeerError as exc:
        fail(str(exc))
    if data is None:
        fail(f"no status in {checkpoint_dir}: has a peer run with this --checkpoint-dir?")
    data["running"] = _alive(int(data.get("pid", 0))) and not data.get("stopped", False)
    data["age_seconds"] = round(time.time() - float(data.get("updated", 0)), 1)
    if as_json:
        typer.echo(json.dumps(data, indent=1))
        return
    table = Table(title=f"peer {data['peer_id']}", show_header=False)
    last = data.get("last_contribution") or {}
    rows = [
        ("running", "yes" if data["running"] else "no"),
        ("address", data["address"]),
        ("round", f"{data['round']}" + (f" / {data['rounds_target']}" if data.get("rounds_target") else "")),
        ("connected peers", str(data["peers"])),
        ("last contribution", f"round {last.get('round')} {last.get('delta_hash', '')[:18]}… {last.get('status')}" if last else "-"),
        ("queued for the chain", str(data["queued_records"])),
        ("accuracy (local held-out)", f"{data['accuracy']:.4f}"),
        ("merged / recorded", f"{data['merged_total']} / {data['recorded_total']}"),
        ("withdrawn subjects", str(data["withdrawn_subjects"])),
        ("epsilon spent", f"{data['epsilon_total']:.4f}"),
        ("dropped", ", ".join(f"{k}={v}" for k, v in data["dropped"].items()) or "0"),
        ("bytes sent / received", f"{data['bytes_sent']:,} / {data['bytes_received']:,}"),
        ("updated", f"{data['age_seconds']} s ago"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


@app.command("init")
def init(
    out: Path = typer.Option(Path("."), "--out", "-o", help="Folder for node.key and node.toml."),
    data_dir: Path = typer.Option(Path("data"), "--data-dir", help="Ingested data folder the config points at."),
    devnet: Optional[Path] = typer.Option(None, "--devnet", help="devnet.json the config points at."),
) -> None:
    """Create a node key and a config template; print the peer ID and address to register."""
    from gossip.identity import eth_address_from_peer_id, load_or_create_secret, peer_id_from_secret
    from node.config import to_toml

    out.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_secret(out / "node.key")
    peer_id = peer_id_from_secret(secret)
    config_path = out / "node.toml"
    if not config_path.exists():
        cfg = NodeConfig(key_file=Path("node.key"), data_dir=data_dir, checkpoint_dir=Path("checkpoint"), devnet=devnet)
        config_path.write_text(to_toml(cfg))
    typer.echo(f"key:     {out / 'node.key'} (keep it secret; it is the node's identity and account)")
    typer.echo(f"config:  {config_path}")
    typer.echo(f"peer ID: {peer_id}")
    typer.echo(f"address: {eth_address_from_peer_id(peer_id)}")
    typer.echo(
        f"next: the consortium admin runs `medgossip admin register-node --address "
        f"{eth_address_from_peer_id(peer_id)} --peer-id {peer_id}`"
    )


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

