"""Three hospitals on emulated hosts, as the multi-host tests (and a benchmark) drive them.

Each hospital is a network namespace (tests/integration/netns.py) whose operator runs
only `medgossip` commands there: `data ingest`, `node init` with listen/announce/
bootstrap addresses and the consortium's network.json, `node start`. The admin's
commands (`admin register-node`, `admin fund`, `admin set-genesis`) run on a fourth host.
`Watch` reads what the test may read from outside the peers: the chain's records, each
peer's status.json and node.json.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contracts.ledger import AuditLedger
from contracts.records import ContributionRecorded
from devnet.anvil import find_anvil, wait_for_rpc
from devnet.manage import ANVIL_FUNDER_KEY
from devnet.processes import spawn
from node.checkpoint import CheckpointStore
from node.cli.localnet import tail
from node.errors import PeerError
from node.peer.status import PeerStatus
from tests.integration.netns import BRIDGE_ADDRESS, Host, HostNet

PORT = 4001
"""The documented fixed libp2p port: every hospital can be told the others' addresses."""
LOCAL_STEPS = 8
BATCH = 32
PEER_FLAGS = ("--local-steps", str(LOCAL_STEPS), "--batch-size", str(BATCH), "--fan-out", "3",
              "--chain-poll", "0.5", "--eval-every", "1000", "--rounds", "0")
"""Small rounds, no evaluation to speak of, and no round limit: the peers train, record
and gossip for the whole test, through every partition, until the test stops them."""


@dataclass
class Hospital:
    """One hospital's host, folder and peer process, as the test sees them."""

    host: Host
    folder: Path
    peer_id: str = ""
    address: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"hospital-{self.host.index}"

    @property
    def multiaddr(self) -> str:
        return f"/ip4/{self.host.address}/tcp/{PORT}/p2p/{self.peer_id}"

    @property
    def log(self) -> Path:
        return self.folder / "peer.log"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint"

    def status(self) -> PeerStatus | None:
        try:
            return PeerStatus.load(self.checkpoint)
        except PeerError:  # caught mid-write by a reader on another filesystem view: next poll
            return None

    def merged(self) -> set[str]:
        """Delta hashes (0x-hex) this peer merged (its node.json)."""
        return {h.lower() for h in CheckpointStore(self.checkpoint).load_state().merged}

    def settled(self) -> set[str]:
        """Delta hashes (0x-hex) this peer merged or refused for good (its node.json)."""
        state = CheckpointStore(self.checkpoint).load_state()
        return {h.lower() for h in (*state.merged, *state.refused)}


def medgossip(net: HostNet, host: Host, *args: str | os.PathLike[str], cwd: Path | None = None,
              timeout: float = 180) -> str:
    """`medgossip ARGS` run inside `host`, as a hospital's operator runs it; its stdout."""
    env = {**os.environ, "COLUMNS": "200"}
    done = net.run(host, sys.executable, "-m", "node.cli", *args, env=env, cwd=cwd, timeout=timeout)
    if done.returncode != 0:
        shown = " ".join(os.fspath(a) for a in args)
        raise AssertionError(f"medgossip {shown} in {host.name} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _field(output: str, label: str) -> str:
    """The value printed after `label:` (node init's peer ID and address)."""
    for line in output.splitlines():
        if line.strip().lower().startswith(label.lower() + ":"):
            return line.split(":", 1)[1].strip().split()[0]
    raise AssertionError(f"no {label!r} line in:\n{output}")


def start_chain(net: HostNet, folder: Path) -> str:
    """anvil bound on the bridge address (root namespace), ending with the test; its RPC URL."""
    with socket.create_server((BRIDGE_ADDRESS, 0)) as probe:
        port = probe.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "anvil.log", "ab") as log:
        proc = spawn([str(find_anvil()), "--host", BRIDGE_ADDRESS, "--port", str(port)],
                     stdout=log, stderr=subprocess.STDOUT)
    net.adopt(proc)
    rpc = f"http://{BRIDGE_ADDRESS}:{port}"
    wait_for_rpc(rpc, 30, proc=proc, log_file=folder / "anvil.log")
    return rpc


def logs(hospitals: list[Hospital], lines: int = 30) -> str:
    """Each peer's status summary and log tail, for failure messages."""
    parts = []
    for h in hospitals:
        s = h.status()
        summary = "no status" if s is None else (
            f"round {s.round}, peers {s.peers}, known_unmerged {s.known_unmerged}, queued {s.queued_records}, "
            f"training {s.training!r}, recorder {s.recorder!r}")
        parts.append(f"--- {h.name} ({summary}) peer.log, last {lines} lines ---\n{tail(h.log, lines)}")
    return "\n".join(parts)


def poll(hospitals: list[Hospital], predicate: Callable[[], bool], timeout: float,
         what: Callable[[], str], every: Callable[[], None] = lambda: None) -> float:
    """Poll `predicate` (calling `every` on each turn) until it holds; the seconds it took.
    Fails with `what()` (evaluated then) and the peers' logs on timeout or when a peer
    process has died."""
    start = time.monotonic()
    while True:
        every()
        if predicate():
            return time.monotonic() - start
        dead = [f"{h.name} (exit {h.process.returncode})" for h in hospitals
                if h.process is not None and h.process.poll() is not None]
        if dead:
            raise AssertionError(f"{', '.join(dead)} died while waiting for: {what()}\n{logs(hospitals)}")
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what()}\n{logs(hospitals)}")
        time.sleep(0.5)


class Watch:
    """What the test reads from outside the peers: the chain's records and each peer's files."""

    def __init__(self, hospitals: list[Hospital], ledger: AuditLedger) -> None:
        self.hospitals = hospitals
        self.ledger = ledger
        self.authors = {h.address.lower(): h for h in hospitals}

    def records(self) -> list[ContributionRecorded]:
        return [c for c in self.ledger.contributions() if c.node.lower() in self.authors]

    def rounds(self) -> dict[str, int]:
        """Each peer's last completed round, from its status.json."""
        return {h.address.lower(): (s.round if (s := h.status()) else 0) for h in self.hospitals}

    def unmerged(self, upto: dict[str, int] | None = None) -> dict[str, list[tuple[str, int]]]:
        """Per peer, the (author, round) of the other peers' records on chain it has not
        settled; `upto`: only records up to that round of each author."""
        records = self.records()
        missing: dict[str, list[tuple[str, int]]] = {}
        for h in self.hospitals:
            settled = h.settled()
            todo = [(self.authors[c.node.lower()].name, c.round) for c in records
                    if c.node.lower() != h.address.lower()
                    and (upto is None or c.round <= upto[c.node.lower()])
                    and "0x" + c.delta_hash.hex() not in settled]
            if todo:
                missing[h.name] = todo
        return missing

    def merged_from_everyone(self) -> bool:
        """Has every peer merged at least one delta of every other peer?"""
        records = self.records()
        for h in self.hospitals:
            merged = h.merged()
            authors = {c.node.lower() for c in records if "0x" + c.delta_hash.hex() in merged}
            if authors != set(self.authors) - {h.address.lower()}:
                return False
        return True

    def backlog_recorded(self, upto: dict[str, int]) -> bool:
        """Every peer's contributions up to `upto` are on chain (a cut-off peer's queue is drained)."""
        on_chain: dict[str, set[int]] = {}
        for c in self.records():
            on_chain.setdefault(c.node.lower(), set()).add(c.round)
        for h in self.hospitals:
            journal = CheckpointStore(h.checkpoint).load_state().journal
            wanted = {e.round for e in journal if e.round <= upto[h.address.lower()] and e.status != "rejected"}
            if not wanted <= on_chain.get(h.address.lower(), set()):
                return False
        return True


def set_up_hospitals(net: HostNet, tmp_path: Path, network: Path, admin_key: Path) -> list[Hospital]:
    """Each hospital's operator, on its own host, ingests its data and inits its node;
    the admin (on the fourth host) registers and funds it and fixes the genesis."""
    *hosts, admin_host = net.hosts
    corpus = tmp_path / "corpus"
    medgossip(net, admin_host, "data", "make-demo", "--hospitals", str(len(hosts)), "--images", "300",
              "--out", corpus)
    hospitals: list[Hospital] = []
    for i, host in enumerate(hosts):
        h = Hospital(host, tmp_path / f"hospital-{host.index}")
        h.folder.mkdir()
        medgossip(net, host, "data", "ingest", corpus / f"hospital-{i:02d}", "--labels", corpus / "labels.csv",
                  "--out", h.folder / "data")
        bootstrap = [arg for earlier in hospitals for arg in ("--bootstrap", earlier.multiaddr)]
        out = medgossip(net, host, "node", "init", "--dir", h.folder, "--data-dir", h.folder / "data",
                        "--listen", f"/ip4/0.0.0.0/tcp/{PORT}", "--announce", f"/ip4/{host.address}/tcp/{PORT}",
                        *bootstrap, "--network", network)
        h.peer_id, h.address = _field(out, "peer ID"), _field(out, "address")
        medgossip(net, admin_host, "admin", "register-node", "--peer-id", h.peer_id,
                  "--sample-cap", str(LOCAL_STEPS * BATCH), "--key", admin_key, "--network", network)
        medgossip(net, admin_host, "admin", "fund", "--address", h.address, "--amount", "10",
                  "--key", admin_key, "--network", network)
        hospitals.append(h)
    genesis = medgossip(net, hosts[0], "node", "genesis-hash", "--config", hospitals[0].folder / "node.toml").split()[-1]
    medgossip(net, admin_host, "admin", "set-genesis", "--hash", genesis, "--key", admin_key, "--network", network)
    return hospitals


@dataclass(frozen=True)
class Consortium:
    """A chain on the bridge, AuditLedger deployed with `admin deploy`, and three
    hospitals set up through the CLI (not started yet)."""

    admin_host: Host
    network: Path
    """network.json, as `admin deploy` wrote it."""
    hospitals: list[Hospital]
    watch: Watch
    admin: AuditLedger


def set_up_consortium(net: HostNet, folder: Path) -> Consortium:
    """anvil on the bridge address, `admin deploy` from the last host (the admin's),
    and a hospital on each other host (`set_up_hospitals`)."""
    admin_host = net.hosts[-1]
    rpc = start_chain(net, folder / "chain")
    admin_key = folder / "admin.key"
    admin_key.write_text(ANVIL_FUNDER_KEY)
    admin_key.chmod(0o600)
    network = folder / "network.json"
    medgossip(net, admin_host, "admin", "deploy", "--rpc", rpc, "--key", admin_key, "--out", network)
    hospitals = set_up_hospitals(net, folder, network, admin_key)
    contract = json.loads(network.read_text())["contract"]
    return Consortium(admin_host, network, hospitals, Watch(hospitals, AuditLedger(rpc, contract)),
                      AuditLedger(rpc, contract, private_key=ANVIL_FUNDER_KEY))


def start_peer(net: HostNet, h: Hospital) -> None:
    with open(h.log, "ab") as log:
        h.process = net.start(
            h.host, [sys.executable, "-m", "node.cli", "node", "start", "--config", h.folder / "node.toml", *PEER_FLAGS],
            stdout=log, stderr=subprocess.STDOUT, cwd=h.folder, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
