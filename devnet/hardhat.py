"""A Hardhat network node: the second EVM implementation (EDR) the ledger runs on.

"Any EVM chain" is a claim until the binding meets a node that is not anvil: the
ledger tests and a 2-peer scenario also run against `hardhat node` from the npm
package `hardhat` (2.x: 3.x needs Node 22), pinned in package-lock.json. Its config,
devnet/hardhat.config.cjs, keeps anvil's chain id, mnemonic and automine, so
`devnet.manage.ANVIL_FUNDER_KEY` is a funded account here too.

Started like anvil (devnet/anvil.py: a free port on one address, a log file, wait until
the RPC answers, a child that dies with its parent) but only for a run: it keeps its
chain in memory, so there is no `devnet start` for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devnet.anvil import DEFAULT_HOST, check_host, port_is_free, rpc_url_of, wait_for_rpc
from devnet.errors import HardhatNotFound, PortInUse
from devnet.processes import spawn

__all__ = [
    "HARDHAT_CONFIG",
    "HardhatProcess",
    "find_hardhat",
    "running_hardhat",
    "start_hardhat",
    "stop_hardhat",
]

HARDHAT_CONFIG = Path(__file__).with_name("hardhat.config.cjs")

_REPO_ROOT = Path(__file__).resolve().parent.parent
_CLI = Path("node_modules") / "hardhat" / "internal" / "cli" / "bootstrap.js"

# Started by this process: stopping one also reaps it (no zombie).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class HardhatProcess:
    """A running Hardhat network node."""

    pid: int
    port: int
    rpc_url: str
    log_file: Path


@dataclass(frozen=True)
class _Install:
    node: Path
    cli: Path
    root: Path
    """The directory holding node_modules: hardhat refuses to run from anywhere else."""


def find_hardhat() -> _Install:
    """node and the hardhat CLI of the npm package under the repo root (or the
    current directory); HardhatNotFound says what to install."""
    node = shutil.which("node")
    if node is None:
        raise HardhatNotFound("node is not on PATH: hardhat runs on Node.js (20 or later)")
    for root in (_REPO_ROOT, Path.cwd()):
        cli = root / _CLI
        if cli.is_file():
            return _Install(Path(node), cli.resolve(), root.resolve())
    raise HardhatNotFound(f"hardhat not found (expected {_CLI}): run `make install` (npm ci)")


def start_hardhat(
    port: int,
    log_file: Path,
    *,
    host: str = DEFAULT_HOST,
    timeout: float = 60.0,
    die_with_parent: bool = True,
) -> HardhatProcess:
    """Start `hardhat node` on `host`:`port` (own session) and wait for its RPC."""
    install = find_hardhat()
    host = check_host(host)
    if not port_is_free(port, host):
        raise PortInUse(f"port {port} on {host} is already in use: choose another port")
    command = [
        str(install.node), str(install.cli), "node",
        "--config", str(HARDHAT_CONFIG),
        "--hostname", host,
        "--port", str(port),
    ]
    env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = spawn(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=install.root,
                     die_with_parent=die_with_parent)
    _children[proc.pid] = proc
    process = HardhatProcess(proc.pid, port, rpc_url_of(host, port), log_file)
    try:
        wait_for_rpc(process.rpc_url, timeout, proc=proc, log_file=log_file, what="hardhat")
    except BaseException:  # also Ctrl-C while waiting: no hardhat left behind
        stop_hardhat(process)
        raise
    return process


def stop_hardhat(process: HardhatProcess, timeout: float = 15.0) -> bool:
    """SIGTERM the node (its chain is in memory: nothing to save), SIGKILL after
    `timeout`. False if this process did not start it or it had already ended."""
    proc = _children.pop(process.pid, None)
    if proc is None or proc.poll() is not None:
        return False
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return True


@contextmanager
def running_hardhat(port: int, log_file: Path, *, host: str = DEFAULT_HOST) -> Iterator[HardhatProcess]:
    """A Hardhat node for the block, stopped afterwards (also on an error)."""
    process = start_hardhat(port, log_file, host=host)
    try:
        yield process
    finally:
        stop_hardhat(process)
