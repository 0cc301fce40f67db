"""Helpers for the peer-network integration tests: a localnet run, polling, evidence.

Everything real: `node.cli.localnet` writes a reduced DICOM demo corpus, ingests it per
hospital, starts anvil with AuditLedger, and runs one `medgossip node start` OS process
per peer. The helpers here only watch (status.json, node.json, audit files, peer.log)
and poke (signals, transactions); they never reach into a peer's memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devnet.processes import spawn
from node.checkpoint import NodeState
from node.cli.localnet import LocalNet, PeerHandle, tail

LOG_LINES = 25


def logs(peers: Iterable[PeerHandle], lines: int = LOG_LINES) -> str:
    """The tail of each peer's log, for assertion messages."""
    return "\n".join(f"--- {p.name} peer.log (last {lines} lines) ---\n{tail(p.log_path, lines)}" for p in peers)


def status(peer: PeerHandle) -> dict[str, Any]:
    """The peer's PeerStatus as its JSON fields ({} before its first write), for assertions."""
    current = peer.status()
    return {} if current is None else current.to_json()


def state(peer: PeerHandle) -> NodeState:
    return peer.store.load_state()


def rounds(net: LocalNet) -> dict[str, int]:
    return {p.name: status(p).get("round", 0) for p in net.peers}


def wait_until(
    net: LocalNet,
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    peers: Iterable[PeerHandle] | None = None,
    poll: float = 0.3,
    allow_dead: Iterable[PeerHandle] = (),
    while_training: bool = False,
) -> None:
    """Poll `predicate` with a deadline; on timeout (or a peer dying) fail with log tails.

    A peer in `allow_dead` may be down (the test killed it); any other peer that is not
    running is a failure. `while_training`: what is awaited needs more rounds, so a
    watched peer that has finished all its rounds first fails the wait at once.
    """
    watched = list(peers) if peers is not None else list(net.peers)
    allowed = {p.name for p in allow_dead}
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if while_training:
            done = [p.name for p in watched if status(p).get("finished")]
            if done:
                raise AssertionError(
                    f"{', '.join(done)} finished every round before: {what}\nrounds: {rounds(net)}\n{logs(watched)}"
                )
        for p in net.peers:
            if p.name not in allowed and not p.alive():
                code = None if p.process is None else p.process.returncode
                raise AssertionError(
                    f"{p.name} stopped (exit {code}) while waiting for: {what}\n{logs([p], 60)}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for: {what}\nrounds: {rounds(net)}\n{logs(watched)}"
            )
        time.sleep(poll)


# --- the adversary process --------------------------------------------------------------


@dataclass
class Adversary:
    """tests/integration/peer_adversary.py running as its own OS process."""

    process: subprocess.Popen[bytes]
    folder: Path

    @property
    def log_path(self) -> Path:
        return self.folder / "adversary.log"

    @property
    def status_path(self) -> Path:
        return self.folder / "adversary-status.json"

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def ready(self, names: Iterable[str]) -> bool:
        """Are these hosts connected to every honest peer (and waiting for `go`)?"""
        report = self.status()
        return all(report.get(name, {}).get("ready") for name in names)

    def go(self) -> None:
        """Let the ready hosts start announcing."""
        self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_adversary(folder: Path, spec: dict[str, Any], module: str = "tests.integration.peer_adversary") -> Adversary:
    """Run `python -m <module> SPEC.json` (an adversary of this folder) as its own process."""
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "adversary.json"
    spec = {**spec, "status_file": str(folder / "adversary-status.json")}
    spec_path.write_text(json.dumps(spec))
    os.chmod(spec_path, 0o600)  # holds secrets
    with open(folder / "adversary.log", "ab") as log:
        process = spawn(
            [sys.executable, "-m", module, str(spec_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Adversary(process, folder)
