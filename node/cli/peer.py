"""medgossip node start|status|init: the peer process and a look at it."""

from __future__ import annotations

import dataclasses
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

from node.cli._boundary import fail
from node.config import ENV_PREFIX, NodeConfig

app = typer.Typer(
    no_args_is_help=True,
    help="Run a peer node (train locally, gossip deltas, record on chain) and look at it.",
)


def _option_type(name: str) -> Any:
    """The flag type of NodeConfig field ``name``, from its real type (None: not given)."""
    from typing import get_args, get_origin

    from node.config import field_types, optional_inner

    kind, _ = optional_inner(field_types()[name])
    if get_origin(kind) is tuple:
        return Optional[list[get_args(kind)[0]]]  # type: ignore[misc]
    return Optional[kind]


def _option_flag(name: str) -> str:
    """``--name``; ``--name/--no-name`` for a bool field, so a file's true can be turned off."""
    from node.config import field_types

    flag = "--" + name.replace("_", "-")
    return f"{flag}/--no-{flag[2:]}" if field_types()[name] is bool else flag


def _start(config: Optional[Path], verbose: bool, **overrides: Any) -> None:
    """Check the whole configuration, then run the peer (errors end at the boundary)."""
    from node.config import load_config

    cfg = _with_chain(load_config(config, overrides))
    # The heavy imports (torch, libp2p) only once the configuration is known to be good.
    import trio

    from node.logs import setup_logging
    from node.peer import run_peer

    setup_logging(verbose)
    trio.run(run_peer, cfg)


def _with_chain(cfg: NodeConfig) -> NodeConfig:
    """Take rpc_url and contract from the config's devnet.json where they are not set
    (only the CLI reads devnet files: the peer knows nothing of devnets)."""
    if cfg.devnet is None or (cfg.rpc_url and cfg.contract):
        return cfg
    from devnet.info import DevnetInfo

    info = DevnetInfo.load(cfg.devnet)  # a DevnetFileError says what is wrong with it
    return dataclasses.replace(cfg, rpc_url=cfg.rpc_url or info.rpc_url, contract=cfg.contract or info.contract)


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
        flag = _option_flag(f.name)
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, annotation=_option_type(f.name),
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
    from node.errors import PeerError
    from node.peer.status import PeerStatus

    try:
        status = PeerStatus.load(checkpoint_dir)
    except PeerError as exc:
        fail(str(exc))
    if status is None:
        fail(f"no status in {checkpoint_dir}: has a peer run with this --checkpoint-dir?")
    running = _alive(status.pid) and not status.stopped
    age = round(time.time() - status.updated, 1)
    if as_json:
        typer.echo(json.dumps({**status.to_json(), "running": running, "age_seconds": age}, indent=1))
        return
    table = Table(title=f"peer {status.peer_id}", show_header=False)
    last = status.last_contribution
    rows = [
        ("running", "yes" if running else "no"),
        ("address", status.address),
        ("round", f"{status.round}" + (f" / {status.rounds_target}" if status.rounds_target else "")),
        ("connected peers", str(status.peers)),
        ("last contribution", f"round {last.round} {last.delta_hash[:18]}… {last.status}" if last else "-"),
        ("queued for the chain", f"{status.queued_records}" + ("" if status.recorder == "ok" else f" ({status.recorder})")),
        ("accuracy (local held-out)", f"{status.accuracy:.4f}"),
        ("merged / recorded", f"{status.merged_total} / {status.recorded_total}"),
        ("withdrawn subjects", str(status.withdrawn_subjects)
         + (f" ({status.withdrawals_ignored} withdrawal(s) by another node not obeyed)" if status.withdrawals_ignored else "")),
        ("epsilon spent / budget", status.epsilon_summary()),
        ("dropped", ", ".join(f"{k}={v}" for k, v in status.dropped.items()) or "0"),
        ("bytes sent / received", f"{status.bytes_sent:,} / {status.bytes_received:,}"),
        ("updated", f"{age} s ago"),
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

    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file: give a folder for node.key and node.toml (created if absent)")
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
        f"{eth_address_from_peer_id(peer_id)} --peer-id {peer_id} --sample-cap N` "
        "(N: the most samples one contribution may declare, e.g. local steps x batch size)"
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

