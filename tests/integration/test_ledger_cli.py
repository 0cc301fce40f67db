"""The chain commands as a user runs them against a devnet they start themselves:
exit codes, one-line errors, tables and JSON.

The main path runs the real `medgossip` console script in a subprocess; the many
error cases run the same typer app in-process (each subprocess pays ~2 s of web3
import on a loaded machine).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from contracts.ledger import DEFAULT_EPSILON_BUDGET, AuditLedger
from devnet import DevnetInfo, free_port, stop_devnet
from contracts.errors import PrivacyBudgetExceeded, SampleCountOverCap
from tests.cli_helpers import call, one_clear_line, run

pytestmark = pytest.mark.slow  # anvil and the CLI as separate processes

DEV_CAP = 200
DEV_BUDGET = 2.0


@pytest.fixture
def cli_devnet(tmp_path: Path):
    workdir = tmp_path / "run" / "devnet"
    started = call("devnet", "start", "--dir", str(workdir), "--port", str(free_port()), "--nodes", "2",
                   "--sample-cap", str(DEV_CAP), "--epsilon-budget", str(DEV_BUDGET))
    assert started.returncode == 0, started.stderr
    try:
        yield workdir
    finally:
        stop_devnet(workdir)


def test_devnet_ledger_consent_admin_commands(cli_devnet: Path, tmp_path: Path) -> None:
    devnet_file = str(cli_devnet / "devnet.json")
    info = DevnetInfo.load(cli_devnet)
    assert (cli_devnet / "devnet.json").stat().st_mode & 0o777 == 0o600
    status = call("devnet", "status", "--dir", str(cli_devnet), "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["running"] is True
    assert "private_key" not in status.stdout and info.admin_key not in status.stdout

    # Two nodes record contributions through the binding (as peers do: rounds 1, 2, 3).
    for index, node in enumerate(info.nodes):
        ledger = AuditLedger(info.rpc_url, info.contract, node.private_key)
        for rnd in range(1, 4):
            ledger.record_contribution(keccak(f"{index}-{rnd}".encode()), keccak(b"g"), rnd,
                                       50, keccak(b"r"), 0.25)

    # ledger query: defaults to ./run/devnet/devnet.json
    table = run("ledger", "query", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "contributions (6)" in table.stdout and "node-1" in table.stdout
    assert "nodes (2)" in table.stdout and "sample cap" in table.stdout
    assert "epsilon spent / budget" in table.stdout and table.stdout.count("0.75 / 2") == 2
    by_node = json.loads(call("ledger", "query", "--devnet", devnet_file, "--node", "node-0", "--json").stdout)
    assert [c["round"] for c in by_node["contributions"]] == [1, 2, 3]
    assert {c["node"] for c in by_node["contributions"]} == {info.nodes[0].address}
    assert [(n["address"], n["active"], n["sample_cap"], n["last_round"], n["revoked_at_block"])
            for n in by_node["nodes"]] == [(info.nodes[0].address, True, DEV_CAP, 3, None)]
    assert [(n["epsilon_spent"], n["epsilon_budget"], n["epsilon_spent_micros"], n["epsilon_budget_micros"])
            for n in by_node["nodes"]] == [(0.75, DEV_BUDGET, 750_000, 2_000_000)]
    delta = "0x" + keccak(b"1-2").hex()
    by_delta = json.loads(call("ledger", "query", "--devnet", devnet_file, "--delta", delta, "--json").stdout)
    assert [(c["node"], c["round"]) for c in by_delta["contributions"]] == [(info.nodes[1].address, 2)]
    explicit = call("ledger", "query", "--rpc", info.rpc_url, "--contract", info.contract,
                   "--round", "1", "--json")
    assert len(json.loads(explicit.stdout)["contributions"]) == 2

    # consent by token (patient), relayed by the devnet relayer; a repeat is refused
    token = os.urandom(32).hex()
    first = run("consent", "withdraw", "--devnet", devnet_file, "--token", token, "--json")
    assert first.returncode == 0, first.stderr
    event = json.loads(first.stdout)["event"]
    assert event["subject"] == "0x" + keccak(bytes.fromhex(token)).hex() and event["by_token"]
    one_clear_line(run("consent", "withdraw", "--devnet", devnet_file, "--token", token),
                   "already withdrawn")

    # consent by custodian, with a key file and with a dev node name
    subject = "0x" + keccak(b"subject").hex()
    key_file = tmp_path / "node0.key"
    key_file.write_text(info.nodes[0].private_key[2:] + "\n")
    custodian = call("consent", "withdraw", "--devnet", devnet_file, "--subject", subject,
                    "--key", str(key_file))
    assert custodian.returncode == 0 and "consent withdrawn" in custodian.stdout
    assert "tx 0x" in custodian.stdout and "block" in custodian.stdout
    withdrawals = json.loads(call("ledger", "query", "--devnet", devnet_file, "--subject", subject, "--json").stdout)
    assert [(w["by"], w["by_token"]) for w in withdrawals["withdrawals"]] == [(info.nodes[0].address, False)]

    # admin: lower node-0's cap; its next contribution over the new cap is refused
    capped = call("admin", "set-sample-cap", "--devnet", devnet_file, "--address", "node-0",
                  "--cap", "40", "--json")
    assert capped.returncode == 0, capped.stderr
    assert json.loads(capped.stdout)["event"] == {
        "node": info.nodes[0].address, "sample_cap": 40,
        "block_number": json.loads(capped.stdout)["block_number"],
        "tx_hash": json.loads(capped.stdout)["tx_hash"],
    }
    with pytest.raises(SampleCountOverCap) as over:
        AuditLedger(info.rpc_url, info.contract, info.nodes[0].private_key).record_contribution(
            keccak(b"0-4"), keccak(b"g"), 4, 50, keccak(b"r"), 0.25)
    assert over.value.error_args == (info.nodes[0].address, 50, 40)
    one_clear_line(call("admin", "set-sample-cap", "--devnet", devnet_file, "--address", "node-1",
                        "--cap", "10", "--key", str(key_file)), "not the consortium admin")

    # admin: lower node-1's privacy budget below the next record; that record is refused
    lowered = call("admin", "set-privacy-budget", "--devnet", devnet_file, "--address", "node-1",
                   "--epsilon", "0.9", "--json")
    assert lowered.returncode == 0, lowered.stderr
    event = json.loads(lowered.stdout)["event"]
    assert (event["node"], event["epsilon_budget"], event["epsilon_budget_micros"]) == (
        info.nodes[1].address, 0.9, 900_000)
    with pytest.raises(PrivacyBudgetExceeded) as spent:
        AuditLedger(info.rpc_url, info.contract, info.nodes[1].private_key).record_contribution(
            keccak(b"1-4"), keccak(b"g"), 4, 50, keccak(b"r"), 0.25)
    assert spent.value.error_args == (info.nodes[1].address, 750_000, 250_000, 900_000)
    assert "0.75 / 0.9" in call("ledger", "query", "--devnet", devnet_file, "--node", "node-1").stdout
    plain = call("admin", "set-privacy-budget", "--devnet", devnet_file, "--address", "node-1",
                 "--epsilon", "1")
    assert plain.returncode == 0 and "privacy budget of" in plain.stdout
    one_clear_line(call("admin", "set-privacy-budget", "--devnet", devnet_file, "--address", "node-1",
                        "--epsilon", "5", "--key", str(key_file)), "not the consortium admin")
    one_clear_line(call("admin", "set-privacy-budget", "--devnet", devnet_file, "--address", "node-1",
                        "--epsilon", "2e6"), "epsilon_budget", "too large")
    assert call("admin", "set-privacy-budget", "--devnet", devnet_file, "--address", "node-1",
                "--epsilon", "-1").returncode == 2  # refused by the option itself

    # admin: revoke node-1, which then cannot withdraw; the listing keeps its revocation block
    revoked = call("admin", "revoke-node", "--devnet", devnet_file, "--address", "node-1", "--json")
    assert revoked.returncode == 0, revoked.stderr
    one_clear_line(run("consent", "withdraw", "--devnet", devnet_file, "--subject",
                       "0x" + keccak(b"other").hex(), "--node", "node-1"), "revoked")
    listing = json.loads(call("ledger", "query", "--devnet", devnet_file, "--json").stdout)["nodes"]
    assert [(n["active"], n["sample_cap"], n["revoked_at_block"]) for n in listing] == [
        (True, 40, None), (False, DEV_CAP, json.loads(revoked.stdout)["block_number"])]
    assert "revoked" in call("ledger", "query", "--devnet", devnet_file, "--node", "node-1").stdout
    one_clear_line(call("admin", "set-sample-cap", "--devnet", devnet_file, "--address", "node-1",
                        "--cap", "10"), "revoked")
    one_clear_line(call("admin", "set-privacy-budget", "--devnet", devnet_file, "--address", "node-1",
                        "--epsilon", "3"), "revoked")
    genesis = call("admin", "set-genesis", "--devnet", devnet_file, "--hash", "0x" + keccak(b"g").hex())
    assert genesis.returncode == 0
    one_clear_line(call("admin", "set-genesis", "--devnet", devnet_file, "--hash", "0x" + "12" * 32),
                   "genesis model is already set")


def test_admin_register_node_checks_peer_id_and_address(cli_devnet: Path) -> None:
    from gossip.identity import (
        eth_address_from_peer_id,
        generate_secret,
        peer_id_from_secret,
    )

    devnet_file = str(cli_devnet / "devnet.json")
    peer_id = peer_id_from_secret(generate_secret())
    wrong = DevnetInfo.load(cli_devnet).nodes[0].address

    one_clear_line(call("admin", "register-node", "--devnet", devnet_file, "--peer-id", peer_id,
                       "--address", wrong, "--sample-cap", "64"), "does not match the peer ID")
    missing_cap = call("admin", "register-node", "--devnet", devnet_file, "--peer-id", peer_id)
    assert missing_cap.returncode == 2 and "--sample-cap" in missing_cap.stderr
    assert call("admin", "register-node", "--devnet", devnet_file, "--peer-id", peer_id,
                "--sample-cap", "0").returncode == 2  # refused before any transaction
    for bad in ("-0.5", "nan"):
        assert call("admin", "register-node", "--devnet", devnet_file, "--peer-id", peer_id,
                    "--sample-cap", "64", "--epsilon-budget", bad).returncode == 2
    one_clear_line(call("admin", "register-node", "--devnet", devnet_file, "--peer-id", peer_id,
                        "--sample-cap", "64", "--epsilon-budget", "2e6"), "epsilon_budget", "too large")
    ok = call("admin", "register-node", "--devnet", devnet_file, "--peer-id", peer_id,
              "--sample-cap", "64", "--epsilon-budget", "3.5", "--json")
    assert ok.returncode == 0, ok.stderr
    address = eth_address_from_peer_id(peer_id)
    events = json.loads(ok.stdout)["events"]
    assert [(e["node"], e.get("sample_cap"), e.get("epsilon_budget")) for e in events] == [
        (address, None, None), (address, 64, None), (address, None, 3.5)]
    listed = json.loads(call("ledger", "query", "--devnet", devnet_file, "--node", address, "--json").stdout)
    assert [(n["sample_cap"], n["last_round"], n["epsilon_budget"], n["epsilon_spent"])
            for n in listed["nodes"]] == [(64, 0, 3.5, 0.0)]
    default = call("admin", "register-node", "--devnet", devnet_file, "--sample-cap", "8", "--json",
                   "--peer-id", peer_id_from_secret(generate_secret()))
    assert json.loads(default.stdout)["events"][-1]["epsilon_budget"] == DEFAULT_EPSILON_BUDGET
    one_clear_line(call("admin", "register-node", "--devnet", devnet_file, "--peer-id", peer_id,
                        "--sample-cap", "64"), "already registered")
    one_clear_line(call("admin", "register-node", "--devnet", devnet_file, "--peer-id", "not-a-peer",
                        "--sample-cap", "64"), "--peer-id")


def test_cli_errors_are_one_line(cli_devnet: Path, tmp_path: Path) -> None:
    devnet_file = str(cli_devnet / "devnet.json")
    port = DevnetInfo.load(cli_devnet).port

    one_clear_line(run("devnet", "start", "--dir", str(tmp_path / "other"), "--port", str(port)),
                   "already in use")
    one_clear_line(call("ledger", "query", "--devnet", devnet_file, "--delta", "0x1234"),
                   "--delta must be 64 hex characters")
    one_clear_line(call("consent", "withdraw", "--devnet", devnet_file, "--token", "secret-ish"),
                   "consent token")
    one_clear_line(call("consent", "withdraw", "--devnet", devnet_file, "--subject",
                       "0x" + "ab" * 32, "--key", str(tmp_path / "missing.key")), "not found")
    one_clear_line(call("ledger", "query", "--devnet", str(tmp_path / "nope.json")), "not found")

    assert run("devnet", "stop", "--dir", str(cli_devnet)).returncode == 0
    one_clear_line(run("ledger", "query", "--devnet", devnet_file), "cannot reach the chain")
    status = call("devnet", "status", "--dir", str(cli_devnet))
    assert status.returncode == 3 and "stopped" in status.stdout
