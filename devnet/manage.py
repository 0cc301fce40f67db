"""Start, stop and inspect the local devnet of one directory.

    start_devnet(workdir, nodes=4, port=8545, peer_id_of=..., sample_cap=320,
                 epsilon_budget=10.0, host="127.0.0.1")         -> DevnetInfo
    stop_devnet(workdir)                                        -> bool
    devnet_status(workdir)                                      -> DevnetStatus

The first start deploys AuditLedger and registers the dev nodes, each with the same
sample cap (the most samples one contribution may declare) and privacy budget (the
most epsilon all its contributions may spend); a restart re-uses
the state file, finds the recorded contract (its code is there) and keeps every
record. Node identities are fresh secp256k1 keys (not anvil's well-known dev keys),
funded from anvil's first dev account. Peer IDs are computed by `peer_id_of`, which
the caller injects (the CLI passes `gossip.identity.peer_id_bytes_from_secret`):
devnet does not import gossip.

Every start also writes network.json beside devnet.json: the same chain without keys,
what another host passes to `medgossip node init --network` (with `host` an address
that host can reach).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from contracts.errors import ChainUnavailable, LedgerError
from contracts.ledger import (
    AuditLedger,
    account_address,
    epsilon_budget_to_micros,
    new_private_key,
    send_ether,
)
from contracts.network import NETWORK_FILE, NetworkInfo
from contracts.units import DEFAULT_EPSILON_BUDGET
from devnet.anvil import DEFAULT_HOST, check_host, is_anvil_running, start_anvil, stop_anvil
from devnet.errors import DevnetFileError, DevnetNotRunning
from devnet.info import DEVNET_FILE, DevNode, DevnetInfo

__all__ = [
    "ANVIL_FUNDER_KEY",
    "DEFAULT_EPSILON_BUDGET",
    "DEFAULT_PORT",
    "DEFAULT_SAMPLE_CAP",
    "DevnetStatus",
    "PeerIdOf",
    "devnet_status",
    "start_devnet",
    "stop_devnet",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8545
STATE_FILE = "anvil-state.json"
LOG_FILE = "anvil.log"

ANVIL_FUNDER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
"""anvil's first well-known dev account (test mnemonic): used only to fund fresh keys."""

DEFAULT_SAMPLE_CAP = 320
"""A dev node's sample cap: the default 10 local steps x batch 32."""

ADMIN_FUNDS = 1_000 * 10**18
NODE_FUNDS = 100 * 10**18

PeerIdOf = Callable[[bytes], bytes]
"""secret (32 bytes) -> raw peer ID multihash bytes."""


@dataclass(frozen=True)
class DevnetStatus:
    """What `medgossip devnet status` shows."""

    info: DevnetInfo
    running: bool
    block_number: int | None
    contract_deployed: bool


@dataclass(frozen=True)
class _Limits:
    """What each newly registered dev node gets."""

    sample_cap: int
    epsilon_budget: float


def _devnet_file(workdir: Path) -> Path:
    return workdir / DEVNET_FILE


def start_devnet(
    workdir: str | os.PathLike[str],
    nodes: int = 4,
    port: int | None = None,
    peer_id_of: PeerIdOf | None = None,
    *,
    timeout: float = 30.0,
    die_with_parent: bool = False,
    sample_cap: int = DEFAULT_SAMPLE_CAP,
    epsilon_budget: float = DEFAULT_EPSILON_BUDGET,
    host: str | None = None,
) -> DevnetInfo:
    """Start (or restart) the devnet of `workdir` and return its devnet.json contents.

    Already running: returns the recorded info unchanged. Restart: same state file and
    port (unless `port` is given), contract re-used if its code is there, missing dev
    nodes (up to `nodes`) added. First start: deploy, register `nodes` dev nodes.
    Nodes registered by this call get `sample_cap` and `epsilon_budget`; nodes already
    registered keep theirs. `host`: the address anvil listens on (default: the recorded
    one, else 127.0.0.1); one address others can dial (ValueError for 0.0.0.0).
    `die_with_parent`: anvil ends with this process (a run's own chain); False: it
    outlives us (`medgossip devnet start`).
    """
    if peer_id_of is None:
        raise TypeError("start_devnet needs peer_id_of (secret -> raw peer ID bytes)")
    if nodes < 0:
        raise ValueError("nodes must be >= 0")
    if not 1 <= sample_cap < 2**32:
        raise ValueError("sample_cap must be in [1, 2**32 - 1]")
    epsilon_budget_to_micros(epsilon_budget)  # refused before anvil starts (InvalidInput)
    if host is not None:
        check_host(host)
    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    path = _devnet_file(root)
    previous = DevnetInfo.load(path) if path.exists() else None

    if previous is not None and is_anvil_running(previous.anvil_pid):
        log.info("devnet already running (pid %s)", previous.anvil_pid)
        return previous

    chosen_port = port if port is not None else (previous.port if previous else DEFAULT_PORT)
    chosen_host = host if host is not None else (previous.host if previous else DEFAULT_HOST)
    state_file = root / STATE_FILE
    log_file = root / LOG_FILE
    anvil = start_anvil(chosen_port, state_file, log_file, host=chosen_host, timeout=timeout,
                        die_with_parent=die_with_parent)
    try:
        info = _provision(root, anvil.rpc_url, anvil.pid, chosen_port, state_file, log_file,
                          nodes, peer_id_of, previous, _Limits(sample_cap, epsilon_budget))
    except BaseException:
        stop_anvil(anvil.pid)
        raise
    info = replace(info, host=chosen_host)
    info.save(path)
    NetworkInfo(info.rpc_url, info.chain_id, info.contract, info.deployed_block).save(
        root / NETWORK_FILE, replace=True
    )
    return info


def _provision(
    root: Path,
    rpc_url: str,
    pid: int,
    port: int,
    state_file: Path,
    log_file: Path,
    node_count: int,
    peer_id_of: PeerIdOf,
    previous: DevnetInfo | None,
    limits: _Limits,
) -> DevnetInfo:
    if previous is not None:
        existing = AuditLedger(rpc_url, previous.contract, previous.admin_key)
        if existing.has_code():
            log.info("re-using AuditLedger at %s", previous.contract)
            info = replace(previous, rpc_url=rpc_url, anvil_pid=pid, port=port,
                           state_file=str(state_file), log_file=str(log_file),
                           chain_id=existing.chain_id)
            return _add_nodes(info, existing, node_count, peer_id_of, limits)
        log.warning("no contract at %s after restart (state lost): deploying anew",
                    previous.contract)

    admin_key = previous.admin_key if previous else new_private_key()
    relayer_key = previous.relayer_key if previous else new_private_key()
    admin = account_address(admin_key)
    send_ether(rpc_url, ANVIL_FUNDER_KEY, admin, ADMIN_FUNDS)
    send_ether(rpc_url, ANVIL_FUNDER_KEY, account_address(relayer_key), NODE_FUNDS)
    ledger = AuditLedger.deploy(rpc_url, admin_key)
    info = DevnetInfo(
        rpc_url=rpc_url,
        chain_id=ledger.chain_id,
        contract=ledger.address,
        admin_key=admin_key,
        admin=admin,
        relayer_key=relayer_key,
        nodes=(),
        anvil_pid=pid,
        state_file=str(state_file),
        port=port,
        log_file=str(log_file),
        deployed_block=ledger.deployment.block_number if ledger.deployment else 0,
    )
    return _add_nodes(info, ledger, node_count, peer_id_of, limits)


def _add_nodes(
    info: DevnetInfo, ledger: AuditLedger, node_count: int, peer_id_of: PeerIdOf, limits: _Limits
) -> DevnetInfo:
    nodes = list(info.nodes)
    for index in range(len(nodes), node_count):
        key = new_private_key()
        secret = bytes.fromhex(key[2:])
        node = DevNode(
            name=f"node-{index}",
            address=account_address(key),
            private_key=key,
            peer_id=bytes(peer_id_of(secret)),
        )
        send_ether(info.rpc_url, ANVIL_FUNDER_KEY, node.address, NODE_FUNDS)
        ledger.register_node(node.address, node.peer_id, limits.sample_cap,
                             epsilon_budget=limits.epsilon_budget)
        log.info("registered %s at %s (sample cap %d, epsilon budget %g)", node.name, node.address,
                 limits.sample_cap, limits.epsilon_budget)
        nodes.append(node)
    return replace(info, nodes=tuple(nodes))


def stop_devnet(workdir: str | os.PathLike[str], timeout: float = 15.0) -> bool:
    """Stop the devnet's anvil by its recorded PID (SIGTERM: it writes its state).

    Returns False when it was not running. devnet.json stays (without the PID), so a
    later start resumes the same chain.
    """
    path = _devnet_file(Path(workdir))
    info = DevnetInfo.load(path)
    stopped = info.anvil_pid is not None and stop_anvil(info.anvil_pid, timeout)
    info.with_pid(None).save(path)
    return stopped


def devnet_status(workdir: str | os.PathLike[str]) -> DevnetStatus:
    """Whether the devnet of `workdir` runs, its head block and contract presence."""
    info = DevnetInfo.load(_devnet_file(Path(workdir)))
    running = is_anvil_running(info.anvil_pid)
    block: int | None = None
    deployed = False
    if running:
        try:
            ledger = AuditLedger(info.rpc_url, info.contract)
            block = ledger.block_number()
            deployed = ledger.has_code()
        except ChainUnavailable:
            running = False
        except LedgerError as exc:  # reported as "not deployed"
            log.warning("devnet status: %s", exc)
    return DevnetStatus(info=info, running=running, block_number=block, contract_deployed=deployed)


def require_running(workdir: str | os.PathLike[str]) -> DevnetInfo:
    """The devnet info, or DevnetNotRunning."""
    try:
        info = DevnetInfo.load(_devnet_file(Path(workdir)))
    except DevnetFileError as exc:
        raise DevnetNotRunning(str(exc)) from exc
    if not is_anvil_running(info.anvil_pid):
        raise DevnetNotRunning(f"the devnet in {workdir} is not running: `medgossip devnet start`")
    return info
