"""The anvil process: locate the binary, start it detached, wait for RPC, stop it.

anvil is the native binary from the npm package `@foundry-rs/anvil` (started
directly, never through `npx`: killing npx left anvil running). It listens on one
address, 127.0.0.1 unless told (`host`: e.g. a bridge address other hosts reach), and
persists its chain to `--state FILE` (on SIGTERM, and every
second with `--state-interval 1`, so even a SIGKILL loses at most a second).

An anvil started for a run (`die_with_parent=True`: the localnet, the tests) ends
with the process that started it, even one killed hard (see devnet/processes.py);
`medgossip devnet start` leaves its anvil running on purpose.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import ChainUnavailable
from contracts.ledger import probe_chain
from devnet.errors import AnvilNotFound, DevnetStartFailed, PortInUse
from devnet.processes import spawn

__all__ = [
    "ANVIL_ENV",
    "AnvilProcess",
    "DEFAULT_HOST",
    "check_host",
    "find_anvil",
    "rpc_url_of",
    "free_port",
    "is_anvil_running",
    "port_is_free",
    "start_anvil",
    "stop_anvil",
    "wait_for_rpc",
]

ANVIL_ENV = "MEDGOSSIP_ANVIL"
"""Environment variable overriding the anvil binary's path."""

DEFAULT_HOST = "127.0.0.1"

_REPO_ROOT = Path(__file__).resolve().parent.parent
_NPM_ANVIL = (
    Path("node_modules") / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
    Path("node_modules") / ".bin" / "anvil",
)

# Children started by this process, so that stopping one also reaps it (no zombie).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class AnvilProcess:
    """A running anvil."""

    pid: int
    port: int
    rpc_url: str
    state_file: Path
    log_file: Path


def find_anvil() -> Path:
    """The anvil binary: $MEDGOSSIP_ANVIL, else the npm package under the repo root
    (or the current directory)."""
    override = os.environ.get(ANVIL_ENV)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise AnvilNotFound(f"{ANVIL_ENV}={override} is not an executable file")
    for root in (_REPO_ROOT, Path.cwd()):
        for rel in _NPM_ANVIL:
            path = root / rel
            if path.is_file() and os.access(path, os.X_OK):
                return path.resolve()
    raise AnvilNotFound(
        "anvil not found (expected node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil): "
        f"run `make install`, or set {ANVIL_ENV}"
    )


def check_host(host: str) -> str:
    """An address anvil can bind and others can dial: one concrete IP address
    (ValueError otherwise: 0.0.0.0 or :: would put an address nobody can dial into
    devnet.json)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (e.g. 127.0.0.1 or 198.18.0.1)") from None
    if address.is_unspecified:
        raise ValueError(
            f"{host} means every interface, and devnet.json must name one address others can dial: "
            "give this host's address on the network the hospitals share (e.g. 198.18.0.1)"
        )
    return str(address)


def rpc_url_of(host: str, port: int) -> str:
    """http://HOST:PORT, with an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    """True when `host:port` can be bound right now by a server.

    SO_REUSEADDR as anvil sets it: connections of a previous server lingering in
    TIME_WAIT do not count, only a live listener does.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise DevnetStartFailed(
                    f"{host} is not an address of this host: anvil cannot listen there "
                    "(give one of this host's addresses)"
                ) from exc
            raise
    return True


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port the OS considers free (bind port 0)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_anvil(
    port: int,
    state_file: Path,
    log_file: Path,
    *,
    host: str = DEFAULT_HOST,
    timeout: float = 30.0,
    block_time: float | None = None,
    state_interval: int | None = 1,
    die_with_parent: bool = False,
    extra_args: Sequence[str] = (),
) -> AnvilProcess:
    """Start anvil detached (own session) on `host`:`port` and wait for its RPC.

    `state_interval` seconds between state dumps (None: only on SIGTERM). Each dump
    rewrites the whole chain: beyond a few thousand blocks it slows anvil down.
    `die_with_parent`: SIGTERM anvil when this process dies (call from the main
    thread); False keeps it running after we exit, as `medgossip devnet start` wants.
    `extra_args` go to anvil as they are (e.g. ``("--gas-price", "0")``).
    """
    binary = find_anvil()
    host = check_host(host)
    if not port_is_free(port, host):
        raise PortInUse(
            f"port {port} on {host} is already in use (another devnet?); "
            "stop it or choose another --port"
        )
    state_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(binary),
        "--host", host,
        "--port", str(port),
        "--state", str(state_file),
    ]
    if state_interval is not None:
        command += ["--state-interval", str(state_interval)]
    if block_time is not None:
        command += ["--block-time", str(block_time)]
    command += list(extra_args)
    with open(log_file, "ab") as log:
        proc = spawn(command, stdout=log, stderr=subprocess.STDOUT, die_with_parent=die_with_parent)
    _children[proc.pid] = proc
    rpc_url = rpc_url_of(host, port)
    try:
        wait_for_rpc(rpc_url, timeout, proc=proc, log_file=log_file)
    except BaseException:  # also Ctrl-C / SIGTERM while waiting: no anvil left behind
        stop_anvil(proc.pid)
        raise
    return AnvilProcess(proc.pid, port, rpc_url, state_file, log_file)


def wait_for_rpc(
    rpc_url: str,
    timeout: float,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
    what: str = "anvil",
) -> int:
    """Poll until the chain answers; return its chain id. `what` names the server
    in errors (devnet/hardhat.py waits for hardhat here too)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise DevnetStartFailed(
                f"{what} exited with code {proc.returncode}: {_tail(log_file)}"
            )
        try:
            return probe_chain(rpc_url, timeout=1.0)
        except ChainUnavailable:
            if time.monotonic() > deadline:
                raise DevnetStartFailed(
                    f"{what} did not answer at {rpc_url} within {timeout:.0f} s: {_tail(log_file)}"
                ) from None
            time.sleep(0.05)


def is_anvil_running(pid: int | None) -> bool:
    """True when `pid` is a live (not zombie) anvil process."""
    if pid is None or pid <= 0:
        return False
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    name = cmdline.split(b"\x00", 1)[0]
    return state != "Z" and name.endswith(b"anvil")


def stop_anvil(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM anvil (it writes its state file), wait, SIGKILL after `timeout`.

    Returns False if it was not running.
    """
    if not is_anvil_running(pid):
        _reap(pid)
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _reap(pid)
        return False
    deadline = time.monotonic() + timeout
    while is_anvil_running(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 5.0
        time.sleep(0.05)
        _reap(pid)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def _tail(log_file: Path | None, lines: int = 5) -> str:
    if log_file is None:
        return "(no log)"
    try:
        text = log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"(log {log_file} unreadable)"
    return " | ".join(text[-lines:]) or f"(log {log_file} is empty)"
