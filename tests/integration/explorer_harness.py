"""The explorer's browser tests' world: a real chain, live recording, a real proof, a
hostile node, and `medgossip explorer` serving it all.

- anvil + AuditLedger (the devnet code), three dev nodes: node-0 is the custodian of a
  patient (rounds over real leaf lists, the patient's withdrawal by token through
  `medgossip consent withdraw` between two rounds, then node.audit's proofs), node-1
  and node-2 are live recorders (this module run as `python -m ... record`, one OS
  process each, recording a contribution every RECORD_EVERY seconds until stopped);
- `medgossip explorer --devnet` as a subprocess on a free port, its own sqlite index;
- on demand, while the explorer runs (`build_hostile`): a node registered with a peer ID
  of HTML and script, whose records carry payloads meant to break a page (markup in
  hash bytes, the largest round, sample count and epsilon the contract takes) and which
  withdraws a "subject" of markup bytes.

    python -m tests.integration.explorer_harness record RPC CONTRACT KEY_FILE TAG
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_hash.auto import keccak

from contracts.ledger import AuditLedger
from devnet import DevnetInfo, free_port, start_devnet
from devnet.processes import interrupt_on_terminate, spawn
from gossip.identity import peer_id_bytes_from_secret
from node.merkle import data_root

REPO = Path(__file__).resolve().parents[2]
MEDGOSSIP = str(Path(sys.executable).with_name("medgossip"))
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "test-output" / "explorer"
"""where the page screenshots go (gitignored; the overview's is docs/explorer.png)."""

RECORD_EVERY = 0.7
"""seconds between two records of one live recorder."""

XSS_PEER_ID = b"<img src=x onerror=alert(1)><script>window.__xss=1</script>"
"""the hostile node's registered peer ID (raw bytes, as the contract takes any)."""


def pad32(text: bytes) -> bytes:
    """`text` as a bytes32 (right-padded with zeros)."""
    if len(text) > 32:
        raise ValueError(f"{text!r} is over 32 bytes")
    return text.ljust(32, b"\0")


HOSTILE_DELTA = pad32(b"</script><script>__xss=1</script>"[:32])
HOSTILE_BASE = pad32(b"\"'><svg onload=alert(1)>")
HOSTILE_ROOT = pad32(b"<iframe src=javascript:alert(1)>")
HOSTILE_SUBJECT = pad32(b"<script>alert('subject')</script>"[:32])
HOSTILE_ROUND = 2**64 - 1
HOSTILE_SAMPLES = 2**32 - 1
HOSTILE_BUDGET = 1_000_000.0
"""epsilon: the largest budget the contract takes is about 1.1e6 (uint40 micros)."""


def hexh(value: bytes) -> str:
    return "0x" + value.hex()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


# --- the custodian: rounds over real leaves, a withdrawal by token, proofs ------------------


@dataclass(frozen=True)
class Custodian:
    """node-0's history: rounds 1-3 before the patient's withdrawal (the patient in 1 and
    2), rounds 4-6 after, with audit records in a checkpoint folder; its proofs."""

    address: str
    token: bytes
    subject: bytes
    withdrawal_block: int
    recorded: dict[int, bytes]
    """round -> delta hash."""
    proofs: Path
    """the proof folder node.audit.prove_withdrawal wrote (index.json + one file each)."""

    def proof_file(self, round_: int) -> Path:
        index = json.loads((self.proofs / "index.json").read_text())
        entry = next(e for e in index["contributions"] if e["round"] == round_)
        return self.proofs / entry["file"]


def build_custodian(devnet: DevnetInfo, devnet_file: Path, folder: Path) -> Custodian:
    from node.audit import prove_withdrawal
    from tests.node.audit_scenario import SUBJECT, TOKEN, Custodian as Scenario, commitment

    node = devnet.nodes[0]
    scenario = Scenario(AuditLedger(devnet.rpc_url, devnet.contract, node.private_key), folder / "checkpoint")
    others = [commitment(i) for i in range(9)]
    scenario.contribute(1, [SUBJECT, *others[:5]])
    scenario.contribute(2, [SUBJECT, *others[2:8]])
    scenario.contribute(3, others[:4])
    withdrawn = subprocess.run(
        [MEDGOSSIP, "consent", "withdraw", "--token", TOKEN.hex(), "--json", "--devnet", str(devnet_file)],
        capture_output=True, text=True, timeout=120,
    )
    if withdrawn.returncode != 0:
        raise AssertionError(f"consent withdraw exited {withdrawn.returncode}: {withdrawn.stderr}")
    block = int(json.loads(withdrawn.stdout)["block_number"])
    scenario.contribute(4, others[1:9])
    scenario.contribute(5, others[:3])
    scenario.contribute(6, others[4:])
    proofs = folder / "proofs"
    prove_withdrawal(AuditLedger(devnet.rpc_url, devnet.contract), SUBJECT, scenario.folder, proofs)
    return Custodian(node.address, TOKEN, SUBJECT, block, dict(scenario.recorded), proofs)


# --- the hostile node ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    address: str
    peer_id: bytes
    delta_hashes: tuple[bytes, ...]
    subject: bytes


def build_hostile(devnet: DevnetInfo) -> Hostile:
    """Register a node whose peer ID is HTML and script; record payloads made to break a page."""
    from contracts.ledger import account_address, new_private_key, send_ether
    from devnet.manage import ANVIL_FUNDER_KEY, NODE_FUNDS

    key = new_private_key()
    address = account_address(key)
    send_ether(devnet.rpc_url, ANVIL_FUNDER_KEY, address, NODE_FUNDS)
    admin = AuditLedger(devnet.rpc_url, devnet.contract, devnet.admin_key)
    admin.register_node(address, XSS_PEER_ID, 320, epsilon_budget=HOSTILE_BUDGET)
    admin.set_sample_cap(address, HOSTILE_SAMPLES)
    node = AuditLedger(devnet.rpc_url, devnet.contract, key)
    node.record_contribution(keccak(b"hostile-1"), HOSTILE_BASE, 1, 1, HOSTILE_ROOT, 0.000001)
    node.record_contribution(HOSTILE_DELTA, keccak(b"hostile-1"), HOSTILE_ROUND, HOSTILE_SAMPLES, HOSTILE_ROOT,
                             HOSTILE_BUDGET - 1)
    node.withdraw_consent(HOSTILE_SUBJECT)
    return Hostile(address, XSS_PEER_ID, (keccak(b"hostile-1"), HOSTILE_DELTA), HOSTILE_SUBJECT)


# --- live recorders ------------------------------------------------------------------------


def start_recorder(devnet: DevnetInfo, index: int, folder: Path) -> subprocess.Popen[bytes]:
    """node-<index> recording as its own process until terminated (dies with this one)."""
    node = devnet.nodes[index]
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / f"{node.name}.key"
    key_file.write_text(node.private_key)
    os.chmod(key_file, 0o600)
    with open(folder / f"{node.name}.log", "ab") as log:
        return spawn(
            [sys.executable, "-m", "tests.integration.explorer_harness", "record", devnet.rpc_url, devnet.contract,
             str(key_file), node.name],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def record_forever(rpc: str, contract: str, key_file: Path, tag: str) -> None:
    """Rounds 1, 2, ...: each trained on a few subjects, based on the previous delta."""
    ledger = AuditLedger(rpc, contract, key_file.read_text().strip())
    base = keccak(b"genesis")
    round_ = recorded = 0
    with interrupt_on_terminate():
        try:
            while True:
                round_ += 1
                subjects = [keccak(f"{tag}-subject-{round_}-{i}".encode()) for i in range(3 + round_ % 5)]
                delta = keccak(f"{tag}-delta-{round_}".encode())
                result = ledger.record_contribution(delta, base, round_, len(subjects), data_root(subjects), 0.01)
                print(f"round {round_} block {result.block_number} {hexh(delta)}", flush=True)
                base, recorded = delta, round_
                time.sleep(RECORD_EVERY)  # the pace of a peer's rounds, not a synchronisation
        except KeyboardInterrupt:
            print(f"stopped after {recorded} rounds", flush=True)


# --- the explorer --------------------------------------------------------------------------


@dataclass(frozen=True)
class Explorer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def alive(self) -> bool:
        """True while it runs; an AssertionError with its log once it has exited."""
        if self.process.poll() is not None:
            raise AssertionError(f"medgossip explorer exited ({self.process.returncode})\n{self.log_tail()}")
        return True

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_explorer(devnet_file: Path, folder: Path, timeout: float = 60) -> Explorer:
    """`medgossip explorer --devnet` on a free port; returns once `/` answers 200."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "explorer.log"
    with open(log, "ab") as out:
        process = spawn(
            [MEDGOSSIP, "explorer", "--devnet", str(devnet_file), "--db", str(folder / "explorer.sqlite"),
             "--port", str(port), "--poll", "0.3"],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    explorer = Explorer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while not _answers(explorer.url + "/"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError(f"medgossip explorer did not serve {explorer.url}/ "
                                 f"(exit {process.returncode})\n{explorer.log_tail()}")
        time.sleep(0.2)
    return explorer


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


# --- the whole world -----------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    devnet: DevnetInfo
    devnet_file: Path
    custodian: Custodian
    recorders: tuple[str, ...]
    """the live recorders' addresses."""
    explorer: Explorer

    @property
    def url(self) -> str:
        return self.explorer.url


def start_chain(folder: Path) -> tuple[DevnetInfo, Path]:
    workdir = folder / "devnet"
    info = start_devnet(workdir, nodes=3, port=free_port(), peer_id_of=peer_id_bytes_from_secret,
                        die_with_parent=True)
    return info, workdir / "devnet.json"


def main(argv: list[str]) -> None:
    if len(argv) != 5 or argv[0] != "record":
        raise SystemExit(__doc__)
    record_forever(argv[1], argv[2], Path(argv[3]), argv[4])


if __name__ == "__main__":
    main(sys.argv[1:])
