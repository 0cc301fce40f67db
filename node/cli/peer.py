"""medgossip node start|status|init|genesis-hash: the peer process and a look at it."""

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

from node.cli._addrs import DEFAULT_LISTEN, DEFAULT_PORT, check_announce, check_bootstrap, check_listen
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
    """Take rpc_url, contract and deployment_block from the config's network.json (or
    else devnet.json) where they are not set (only the CLI reads these files: the peer
    knows nothing of devnets)."""
    if cfg.rpc_url and cfg.contract:
        return cfg
    if cfg.network is not None:
        from contracts.network import NetworkInfo

        net = NetworkInfo.load(cfg.network)  # a NetworkFileError says what is wrong with it
        rpc_url, contract, block = net.rpc_url, net.contract, net.deployment_block
    elif cfg.devnet is not None:
        from devnet.info import DevnetInfo

        info = DevnetInfo.load(cfg.devnet)  # a DevnetFileError says what is wrong with it
        rpc_url, contract, block = info.rpc_url, info.contract, info.deployed_block
    else:
        return cfg
    chosen = cfg.contract or contract
    block = cfg.deployment_block or (block if chosen.lower() == contract.lower() else 0)
    return dataclasses.replace(cfg, rpc_url=cfg.rpc_url or rpc_url, contract=chosen, deployment_block=block)


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
        ("training", status.training),
        ("accuracy (local held-out)", f"{status.accuracy:.4f}"),
        ("merged / recorded", f"{status.merged_total} / {status.recorded_total}"),
        ("known, not merged yet", str(status.known_unmerged)),
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
    out: Path = typer.Option(Path("."), "--dir", "--out", "-o", help="Folder for node.key and node.toml (created if absent)."),
    data_dir: Path = typer.Option(Path("data"), "--data-dir", help="Ingested data folder the config points at."),
    listen: Optional[list[str]] = typer.Option(None, "--listen", help=f"Multiaddr to listen on (repeatable). Default {DEFAULT_LISTEN}: every interface, on the fixed medgossip port {DEFAULT_PORT}, so others know this peer's address in advance."),
    announce: Optional[list[str]] = typer.Option(None, "--announce", help=f"Multiaddr other peers dial to reach this one (repeatable), e.g. /ip4/198.18.0.11/tcp/{DEFAULT_PORT}: needed when listening on 0.0.0.0 behind one known address."),
    bootstrap: Optional[list[str]] = typer.Option(None, "--bootstrap", help=f"Multiaddr with /p2p/PEER_ID of another hospital's peer to dial at start (repeatable), e.g. /ip4/198.18.0.12/tcp/{DEFAULT_PORT}/p2p/16Uiu2HAm..."),
    rpc_url: Optional[str] = typer.Option(None, "--rpc-url", help="JSON-RPC URL of the ledger chain (with --contract)."),
    contract: Optional[str] = typer.Option(None, "--contract", help="AuditLedger address (with --rpc-url)."),
    network: Optional[Path] = typer.Option(None, "--network", help="network.json from the consortium admin (`admin deploy`): its RPC URL, contract and deployment block go into node.toml."),
    devnet: Optional[Path] = typer.Option(None, "--devnet", help="devnet.json the config points at (a local dev chain)."),
) -> None:
    """Create a node key and node.toml; print the peer ID and address to register.

    An existing key is kept (it is the node's identity); an existing node.toml is kept
    too, and then no address or chain option may be given (edit the file instead).

    Example: medgossip node init --dir hospital-a --network network.json
    --announce /ip4/198.18.0.11/tcp/4001 --bootstrap /ip4/198.18.0.12/tcp/4001/p2p/16Uiu2HAm...
    """
    from gossip.identity import eth_address_from_peer_id, load_or_create_secret, peer_id_from_secret
    from node.cli._chain import check_address
    from node.config import to_toml

    # Every option is checked before anything is written (the key needs the folder).
    listen_addrs = tuple(check_listen(a) for a in listen or [DEFAULT_LISTEN])
    announce_addrs = tuple(check_announce(a) for a in announce or [])
    if (rpc_url is None) != (contract is None):
        fail("--rpc-url and --contract go together (or use --network FILE)")
    if network is not None and rpc_url is not None:
        fail("give the chain once: --network FILE, or --rpc-url and --contract")
    if rpc_url is not None and not rpc_url.startswith(("http://", "https://")):
        fail(f"--rpc-url {rpc_url!r} is not an http(s) JSON-RPC URL (e.g. http://198.18.0.1:8545)")
    if contract is not None:
        check_address(contract, "--contract")
    chain_rpc, chain_contract, deployed = rpc_url or "", contract or "", 0
    if network is not None:
        from contracts.network import NetworkInfo

        net = NetworkInfo.load(network)
        chain_rpc, chain_contract, deployed = net.rpc_url, net.contract, net.deployment_block
    if out.exists() and not out.is_dir():
        fail(f"--dir {out} is a file: give a folder for node.key and node.toml (created if absent)")
    config_path = out / "node.toml"
    given = [flag for flag, value in (("--listen", listen), ("--announce", announce), ("--bootstrap", bootstrap),
                                      ("--rpc-url", rpc_url), ("--network", network), ("--devnet", devnet)) if value]
    if config_path.exists() and given:
        fail(f"{config_path} exists and is kept: edit it for {', '.join(given)}, or init another --dir")
    out.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_secret(out / "node.key")
    peer_id = peer_id_from_secret(secret)
    bootstrap_addrs = tuple(check_bootstrap(a, peer_id) for a in bootstrap or [])
    if not config_path.exists():
        cfg = NodeConfig(key_file=Path("node.key"), data_dir=data_dir, checkpoint_dir=Path("checkpoint"), devnet=devnet,
                         listen=listen_addrs, announce=announce_addrs, bootstrap=bootstrap_addrs,
                         rpc_url=chain_rpc, contract=chain_contract, deployment_block=deployed)
        config_path.write_text(to_toml(cfg))
    address = eth_address_from_peer_id(peer_id)
    typer.echo(f"key:     {out / 'node.key'} (keep it secret; it is the node's identity and account)")
    typer.echo(f"config:  {config_path}")
    typer.echo(f"peer ID: {peer_id}")
    typer.echo(f"address: {address}")
    for addr in announce_addrs:
        typer.echo(f"bootstrap address for other hospitals: {addr}/p2p/{peer_id}")
    typer.echo(
        f"next: the consortium admin runs `medgossip admin register-node --address "
        f"{address} --peer-id {peer_id} --sample-cap N` "
        "(N: the most samples one contribution may declare, e.g. local steps x batch size) "
        f"and, on a chain with a gas price, `medgossip admin fund --address {address} --amount ETH`"
    )


@app.command("genesis-hash")
def genesis_hash(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The node's TOML config (its model, image_size, num_classes, genesis_seed)."),
) -> None:
    """Print the hash of the genesis model this config builds: what the consortium
    admin passes to `medgossip admin set-genesis --hash`. Every hospital's config
    must build the same one (same model, image_size, num_classes, genesis_seed).

    Example: medgossip node genesis-hash --config hospital-a/node.toml
    """
    from node.config import load_config
    from node.peer.preflight import config_genesis_hash

    cfg = load_config(config)
    typer.echo("0x" + config_genesis_hash(cfg).hex())


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

