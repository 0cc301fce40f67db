"""`medgossip audit prove|verify` and `consent status` as real processes against anvil,
over real JSON-RPC: the custodian proves with its devnet, an auditor verifies knowing
only the RPC URL, the contract address and the folder.

(The patient's whole journey with real peers is tests/integration's end-to-end test.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.ledger import AuditLedger
from devnet import DevnetInfo
from tests.cli_helpers import one_clear_line, run
from tests.node.audit_scenario import SUBJECT, TOKEN, Custodian, history

pytestmark = pytest.mark.slow  # anvil and the CLI as separate processes


def test_prove_at_the_custodian_and_verify_from_anywhere(devnet: DevnetInfo, tmp_path: Path) -> None:
    node = devnet.nodes[0]
    custodian = Custodian(AuditLedger(devnet.rpc_url, devnet.contract, node.private_key), tmp_path / "checkpoint")
    block = history(custodian, AuditLedger(devnet.rpc_url, devnet.contract, devnet.relayer_key))
    proofs = tmp_path / "proofs"
    devnet_file = str(tmp_path / "devnet" / "devnet.json")

    proved = run("audit", "prove", "--token", TOKEN.hex(), "--checkpoint-dir", str(custodian.folder),
                 "--out", str(proofs), "--devnet", devnet_file)
    assert proved.returncode == 0, proved.stderr
    assert "5 files of 6 contributions" in proved.stdout

    auditor = tmp_path / "auditor"  # no devnet here: only the RPC URL and the contract address
    auditor.mkdir()
    chain = ["--rpc", devnet.rpc_url, "--contract", devnet.contract]
    verified = run("audit", "verify", str(proofs), "--json", *chain, cwd=auditor)
    assert verified.returncode == 0, verified.stderr
    verdict = json.loads(verified.stdout)
    assert verdict["ok"] is True and verdict["node"] == node.address and verdict["since_block"] == block
    assert [(p["round"], p["kind"]) for p in verdict["proofs"]] == [
        (1, "inclusion"), (2, "inclusion"), (4, "exclusion"), (5, "exclusion"), (6, "exclusion")
    ]

    status = run("consent", "status", "--subject", "0x" + SUBJECT.hex(), "--proofs", str(proofs), *chain, cwd=auditor)
    assert status.returncode == 0, status.stderr
    assert f"withdrawn in block {block}" in status.stdout and "PASS" in status.stdout

    (proofs / "round-4-exclusion.json").unlink()
    one_clear_line(run("audit", "verify", str(proofs), *chain, cwd=auditor),
                   "missing exclusion proof", "0x" + custodian.recorded[4].hex(), "round 4")
