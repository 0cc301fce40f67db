"""Emulated hosts for multi-host tests: Linux network namespaces on one bridge.

Layout (addresses only from the benchmarking range 198.18.0.0/15):

    root namespace   mg-br0 198.18.0.1/24   (a service bound here, e.g. anvil, is "the chain")
      |- mg-h1-br  ==veth==  mg-h1-ns 198.18.0.11/24  in namespace mg-h1  (default via .1)
      |- mg-h2-br  ==veth==  mg-h2-ns 198.18.0.12/24  in namespace mg-h2
      ...

Partitions, both kinds the issue asks for:
- `link_down(h)` sets h's root-side veth down: h loses every host and the chain.
- `block(a, b)` adds iptables DROP rules inside a's namespace for b's address, both
  directions: a and b no longer reach each other, but both still reach 198.18.0.1.
  The rules live in our namespaces, so the machine's own firewall is never touched, and
  each carries a comment unique to this run (`mg-test-<pid>-<n>`).

Cleanup: `HostNet.close()` (registered as a finalizer before anything is created, so it
also runs when setup or the test fails) stops the processes started in the namespaces,
deletes our rules, namespaces and links. Namespaces and links are machine-wide, so one
test session at a time holds a lock file; whoever takes it first deletes the leftovers
of a crashed run (every mg-hN namespace, its processes, every mg-* link, and any
root-namespace iptables rule commented mg-test-*).

Namespaces need root and the `ip` binary (iproute2); where they cannot be created the
fixture skips with the reason. `iptables` is installed by `make install`: a missing one
fails the test that blocks, rather than skipping it.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from devnet.processes import spawn

BRIDGE = "mg-br0"
BRIDGE_ADDRESS = "198.18.0.1"
PREFIX_LEN = 24
LOCK_FILE = Path("/run/lock/medgossip-netns.lock")
RULE_TAG = "mg-test-"
_NAMESPACE = re.compile(r"^mg-h\d+$")
_rule_ids = itertools.count(1)


class HostNetError(RuntimeError):
    """A namespace/link/iptables command failed: the message has the command and its stderr."""


@dataclass(frozen=True)
class Host:
    """One emulated host: a namespace with one address on the bridge."""

    index: int

    @property
    def name(self) -> str:
        return f"mg-h{self.index}"

    @property
    def address(self) -> str:
        return f"198.18.0.{10 + self.index}"

    @property
    def veth(self) -> str:
        """The root-namespace end, attached to the bridge (what `link_down` sets down)."""
        return f"mg-h{self.index}-br"

    @property
    def inner(self) -> str:
        return f"mg-h{self.index}-ns"

    def argv(self, *args: str | os.PathLike[str]) -> list[str]:
        """`args` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *(os.fspath(a) for a in args)]


@dataclass(frozen=True)
class Block:
    """The iptables DROP rules of one `block(a, b)`, as `iptables -D` needs them."""

    host: Host
    rules: tuple[tuple[str, ...], ...]


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise HostNetError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def _namespaces() -> list[str]:
    """Our namespaces (mg-hN) that exist now."""
    listed = _run(["ip", "netns", "list"]).stdout.split("\n")
    return [line.split()[0] for line in listed if line.strip() and _NAMESPACE.match(line.split()[0])]


def _links() -> list[str]:
    """Our links (mg-*) in the root namespace."""
    out = _run(["ip", "-o", "link", "show"]).stdout
    names = (line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.count(":") >= 2)
    return [n for n in names if n.startswith("mg-")]


def _root_rules() -> list[str]:
    """Root-namespace iptables rules carrying our comment (none is ever made there; a
    crashed future user of this module might)."""
    if shutil.which("iptables") is None:
        return []
    return [line for line in _run(["iptables", "-S"]).stdout.splitlines() if f'"{RULE_TAG}' in line or f" {RULE_TAG}" in line]


def leftovers() -> list[str]:
    """Every namespace, link and root iptables rule of ours that exists now (for tests)."""
    return [*(f"netns {n}" for n in _namespaces()), *(f"link {n}" for n in _links()), *_root_rules()]


def _kill_namespace_processes(namespace: str) -> None:
    """SIGKILL whatever still runs in `namespace`: a process keeps a deleted namespace
    (and its veth) alive."""
    done = _run(["ip", "netns", "pids", namespace], check=False)
    for pid in done.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def delete_leftovers() -> None:
    """Delete every namespace, link and root rule of ours (a crashed run's, or this one's)."""
    for line in _root_rules():
        _run(["iptables", *re.sub(r"^-A ", "-D ", line).split()], check=False)
    for namespace in _namespaces():
        _kill_namespace_processes(namespace)
        _run(["ip", "netns", "del", namespace], check=False)
    for link in _links():
        _run(["ip", "link", "del", link], check=False)


class HostNet:
    """The emulated hosts of one test. Every change it makes is undone by `close()`."""

    def __init__(self, hosts: int) -> None:
        self.hosts = tuple(Host(i) for i in range(1, hosts + 1))
        self.bridge_address = BRIDGE_ADDRESS
        self._processes: list[subprocess.Popen[bytes]] = []
        self._blocks: list[Block] = []
        self._closed = False

    def create(self) -> None:
        """Bridge, then one namespace + veth per host (lo up, default route via the bridge)."""
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/{PREFIX_LEN}", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        for h in self.hosts:
            _run(["ip", "netns", "add", h.name])
            _run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", h.inner])
            _run(["ip", "link", "set", h.inner, "netns", h.name])
            _run(["ip", "link", "set", h.veth, "master", BRIDGE])
            _run(["ip", "link", "set", h.veth, "up"])
            _run(h.argv("ip", "link", "set", "lo", "up"))
            _run(h.argv("ip", "addr", "add", f"{h.address}/{PREFIX_LEN}", "dev", h.inner))
            _run(h.argv("ip", "link", "set", h.inner, "up"))
            _run(h.argv("ip", "route", "add", "default", "via", BRIDGE_ADDRESS))

    # -- running things inside a host -------------------------------------------------

    def run(self, host: Host, *args: str | os.PathLike[str], timeout: float = 60,
            env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run `args` inside `host` to completion (no check: the caller reads returncode)."""
        return subprocess.run(host.argv(*args), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)

    def start(self, host: Host, args: Sequence[str | os.PathLike[str]], *, stdout: int | IO[bytes] | None = None,
              stderr: int | IO[bytes] | None = None, stdin: int | IO[bytes] | None = subprocess.DEVNULL,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a long-lived process inside `host` (`ip netns exec` execs it: the Popen is
        the process itself); it dies with this test process and is stopped by `close()`."""
        proc = spawn(host.argv(*args), stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd)
        self._processes.append(proc)
        return proc

    def adopt(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop `proc` (started elsewhere, e.g. a chain in the root namespace) with the hosts."""
        self._processes.append(proc)

    # -- partitions ---------------------------------------------------------------------

    def link_down(self, host: Host) -> None:
        _run(["ip", "link", "set", host.veth, "down"])

    def link_up(self, host: Host) -> None:
        _run(["ip", "link", "set", host.veth, "up"])

    def block(self, a: Host, b: Host) -> Block:
        """DROP everything between a and b (rules in a's namespace); both keep the bridge."""
        if shutil.which("iptables") is None:
            raise HostNetError("iptables is not installed (`make install` installs it as root)")
        tag = f"{RULE_TAG}{os.getpid()}-{next(_rule_ids)}"
        rules = (
            ("OUTPUT", "-d", b.address, "-j", "DROP", "-m", "comment", "--comment", tag),
            ("INPUT", "-s", b.address, "-j", "DROP", "-m", "comment", "--comment", tag),
        )
        block = Block(a, rules)
        self._blocks.append(block)  # before adding: a half-added block is still undone
        for rule in rules:
            _run(a.argv("iptables", "-I", *rule))
        return block

    def unblock(self, block: Block) -> None:
        for rule in block.rules:
            _run(block.host.argv("iptables", "-D", *rule), check=False)
        if block in self._blocks:
            self._blocks.remove(block)

    def heal(self) -> None:
        """Every link up, every block removed."""
        for block in list(self._blocks):
            self.unblock(block)
        for h in self.hosts:
            self.link_up(h)

    # -- teardown -----------------------------------------------------------------------

    def stop_processes(self, grace: float = 10) -> None:
        """SIGTERM what `start` started or was adopted (a peer saves its status), SIGKILL
        after `grace`."""
        for proc in self._processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._processes:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace)

    def close(self) -> None:
        """Undo everything (idempotent): processes, rules, namespaces, links."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop_processes()
        finally:
            for block in list(self._blocks):
                self.unblock(block)
            delete_leftovers()


@dataclass(frozen=True)
class _Lock:
    """The machine-wide lock one test session holds while it owns the mg-* names."""

    fd: int

    @classmethod
    def take(cls) -> _Lock:
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for another session; released if it dies
        return cls(fd)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


@contextmanager
def exclusive() -> Iterator[None]:
    """Hold the machine-wide lock: no other test session creates or deletes mg-* names
    meanwhile (for checks made outside the `hostnet` fixture)."""
    lock = _Lock.take()
    try:
        yield
    finally:
        lock.release()


def unavailable() -> str | None:
    """Why namespaces cannot be created here (None: they can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the suite as root, as CI does)"
    if shutil.which("ip") is None:
        return "the `ip` binary (iproute2) is missing: `make install` installs it as root"
    return None


@pytest.fixture
def hostnet(request: pytest.FixtureRequest) -> Iterator[Callable[[int], HostNet]]:
    """A factory: `hostnet(n)` creates the bridge and n hosts, torn down after the test
    (also when it fails). One HostNet per test."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    lock = _Lock.take()
    request.addfinalizer(lock.release)
    delete_leftovers()  # a crashed run's
    made: list[HostNet] = []

    def make(hosts: int) -> HostNet:
        if made:
            raise HostNetError("one HostNet per test: the bridge and mg-h* names are shared")
        net = HostNet(hosts)
        made.append(net)
        request.addfinalizer(net.close)  # before creating anything: a failed setup is undone
        probe = _run(["ip", "netns", "add", "mg-h0"], check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {probe.stderr.strip()}")
        _run(["ip", "netns", "del", "mg-h0"])
        net.create()
        return net

    yield make
