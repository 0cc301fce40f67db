"""Two hospitals on a chain that is not anvil: a Hardhat network node (EDR).

Set up as a consortium on any chain is, through the CLI only: `admin deploy` to the
bare node with anvil's first dev key (funded on Hardhat too: same mnemonic), `data
make-demo` / `data ingest`, `node init --network` with listen and bootstrap addresses,
`admin register-node`, `admin fund`, `node genesis-hash` / `admin set-genesis`. Both
peers then run as their own OS processes on loopback (`node start`, the multi-host
tests' flags) until each has recorded contributions on Hardhat and merged the other's
deltas; `ledger query` reads the records back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.ledger import AuditLedger, account_address
from devnet.anvil import free_port
from devnet.hardhat import HardhatProcess
from devnet.manage import ANVIL_FUNDER_KEY
from devnet.processes import spawn
from gossip.identity import load_or_create_secret, peer_id_from_secret
from tests.cli_helpers import Ran, call
from tests.integration.multihost_harness import BATCH, LOCAL_STEPS, PEER_FLAGS, Hospital, Watch, poll
from tests.integration.netns import Host

pytestmark = pytest.mark.slow  # a Hardhat node and two peers, each its own process

RECORDS_EACH = 3
"""Contributions each peer must have recorded on Hardhat: a few rounds."""


def _ok(result: Ran) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _set_up(tmp_path: Path, network: Path, admin_key: Path) -> list[Hospital]:
    """Each hospital ingests its share of the demo corpus and inits its node on
    loopback (the second bootstraps from the first); the admin registers and funds
    both and sets the genesis the first prints."""
    corpus = tmp_path / "corpus"
    _ok(call("data", "make-demo", "--hospitals", "2", "--images", "300", "--out", str(corpus)))
    chain = ("--key", str(admin_key), "--network", str(network))
    hospitals: list[Hospital] = []
    bootstrap: list[str] = []
    for i in range(2):
        # Host only names the hospital here (hospital-1, hospital-2): no namespace is made.
        h = Hospital(Host(i + 1), tmp_path / f"hospital-{i + 1}")
        _ok(call("data", "ingest", str(corpus / f"hospital-{i:02d}"), "--labels", str(corpus / "labels.csv"),
                 "--out", str(h.folder / "data")))
        listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
        _ok(call("node", "init", "--dir", str(h.folder), "--data-dir", str(h.folder / "data"), "--listen", listen,
                 *bootstrap, "--network", str(network)))
        secret = load_or_create_secret(h.folder / "node.key")
        h.peer_id, h.address = peer_id_from_secret(secret), account_address("0x" + secret.hex())
        bootstrap += ["--bootstrap", f"{listen}/p2p/{h.peer_id}"]
        _ok(call("admin", "register-node", "--peer-id", h.peer_id, "--sample-cap", str(LOCAL_STEPS * BATCH), *chain))
        _ok(call("admin", "fund", "--address", h.address, "--amount", "10", *chain))
        hospitals.append(h)
    genesis = _ok(call("node", "genesis-hash", "--config", str(hospitals[0].folder / "node.toml"))).split()[-1]
    _ok(call("admin", "set-genesis", "--hash", genesis, *chain))
    return hospitals


def _start(h: Hospital) -> None:
    with open(h.log, "ab") as log:
        h.process = spawn(
            [sys.executable, "-m", "node.cli", "node", "start", "--config", str(h.folder / "node.toml"), *PEER_FLAGS],
            stdout=log, stderr=subprocess.STDOUT, cwd=h.folder, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _stop(hospitals: list[Hospital]) -> None:
    for h in hospitals:
        if h.process is not None and h.process.poll() is None:
            h.process.send_signal(signal.SIGTERM)
    for h in hospitals:
        if h.process is not None:
            try:
                h.process.wait(30)
            except subprocess.TimeoutExpired:
                h.process.kill()
                h.process.wait()


def test_two_peers_record_and_merge_each_other_on_hardhat(hardhat: HardhatProcess, tmp_path: Path) -> None:
    # Prepare: the consortium on a bare Hardhat node, through the CLI
    admin_key = tmp_path / "admin.key"
    admin_key.write_text(ANVIL_FUNDER_KEY[2:] + "\n")
    admin_key.chmod(0o600)
    network = tmp_path / "network.json"
    _ok(call("admin", "deploy", "--rpc", hardhat.rpc_url, "--key", str(admin_key), "--out", str(network)))
    assert json.loads(network.read_text())["chain_id"] == 31337
    hospitals = _set_up(tmp_path, network, admin_key)
    watch = Watch(hospitals, AuditLedger(hardhat.rpc_url, json.loads(network.read_text())["contract"]))

    # Execute: both peers train, record on Hardhat and gossip until each has recorded a
    # few rounds and merged a delta of the other
    try:
        for h in hospitals:
            _start(h)

        def done() -> bool:
            per_author = {h.address: sum(c.node == h.address for c in watch.records()) for h in hospitals}
            return min(per_author.values()) >= RECORDS_EACH and watch.merged_from_everyone()

        took = poll(hospitals, done, 90, lambda: f"{RECORDS_EACH} records each and a merge of the other's delta "
                                                 f"(rounds {watch.rounds()})")
    finally:
        _stop(hospitals)
    print(f"2 peers on Hardhat: {RECORDS_EACH} records each and cross merges after {took:.1f} s")

    # Assert: the chain's records, read back with `ledger query`, are each peer's
    # rounds in order, and every delta a peer merged is one the other recorded there
    listed = json.loads(_ok(call("ledger", "query", "--network", str(network), "--json")))
    assert {n["address"] for n in listed["nodes"]} == {h.address for h in hospitals}
    recorded = {h.address: [c for c in listed["contributions"] if c["node"] == h.address] for h in hospitals}
    for h, other in zip(hospitals, hospitals[::-1]):
        mine = recorded[h.address]
        assert len(mine) >= RECORDS_EACH
        assert [c["round"] for c in mine] == sorted({c["round"] for c in mine})
        theirs = {c["delta_hash"].lower() for c in recorded[other.address]}
        assert h.merged() and h.merged() <= theirs, (h.name, h.merged() - theirs)
