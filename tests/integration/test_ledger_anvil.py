"""The binding and devnet against a real anvil: two node processes recording 200
contributions (while withdrawing consents on the same key), queries, withdrawals, sample
caps, privacy budgets and rounds, a restart that keeps the records, bad input.

The binding's part (the two writer processes, withdrawals, budgets, revert data at
estimation and after mining, bad input, a bare deploy) also runs on a Hardhat node (EDR,
the second EVM): the `ledger_net` and `bare_rpc` fixtures take both."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from eth_utils import keccak

from contracts.errors import (
    AlreadyWithdrawn,
    ChainUnavailable,
    ContractNotFound,
    InsufficientFunds,
    InvalidInput,
    NodeRevoked,
    NotAdmin,
    NotRegistered,
    PrivacyBudgetExceeded,
    SampleCountOverCap,
    StaleRound,
)
from contracts.ledger import (
    DEFAULT_EPSILON_BUDGET,
    AuditLedger,
    account_address,
    epsilon_to_micros,
    new_private_key,
)
from devnet import (
    AnvilNotFound,
    DevnetInfo,
    PortInUse,
    devnet_status,
    free_port,
    start_devnet,
    stop_devnet,
)
from devnet.manage import ANVIL_FUNDER_KEY, DEFAULT_SAMPLE_CAP
from gossip.identity import eth_address_from_peer_id, peer_id_bytes_from_secret

REPO = Path(__file__).resolve().parents[2]
BASE = keccak(b"base")
ROOT = keccak(b"root")
def _write_key(path: Path, key: str) -> Path:
    path.write_text(key.removeprefix("0x") + "\n")
    path.chmod(0o600)
    return path


def _break_checksum(address: str) -> str:
    index = next(i for i, ch in enumerate(address) if i >= 2 and ch.isalpha())
    return address[:index] + address[index].swapcase() + address[index + 1 :]


@pytest.mark.slow
def test_two_node_processes_record_200_contributions(ledger_net: DevnetInfo, tmp_path: Path) -> None:
    devnet = ledger_net
    # Prepare: one OS process per node, each with its own key; each writer spends 49.5
    # epsilon (0.00, 0.01, ... 0.99), so the admin raises their budgets first.
    admin = AuditLedger(devnet.rpc_url, devnet.contract, devnet.admin_key)
    for node in devnet.nodes:
        admin.set_privacy_budget(node.address, 50.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.ledger_writer", devnet.rpc_url,
             devnet.contract, str(_write_key(tmp_path / f"{node.name}.key", node.private_key)),
             node.name, "100", "30"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for node in devnet.nodes
    ]
    # Execute
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout))
    # Assert
    reader = AuditLedger(devnet.rpc_url, devnet.contract)
    everything = reader.contributions()
    assert len(everything) == 200
    for node, result in zip(devnet.nodes, results):
        assert result["address"] == node.address
        mine = reader.contributions(node=node.address)
        assert len(mine) == 100
        assert ["0x" + c.delta_hash.hex() for c in mine] == result["hashes"]
        assert [c.round for c in mine] == list(range(1, 101))
        assert {c.node for c in mine} == {node.address}
        assert reader.node_info(node.address).last_round == 100  # type: ignore[union-attr]
        spent = sum(epsilon_to_micros(c.epsilon_spent) for c in mine)
        assert reader.node_info(node.address).epsilon_spent_micros == spent == 49_500_000  # type: ignore[union-attr]
        assert {"0x" + w.subject.hex() for w in reader.withdrawals(by=node.address)} == set(result["subjects"])
        assert len(result["subjects"]) == 30
    round3 = reader.contributions(round=3)
    assert len(round3) == 2 and {c.node for c in round3} == {n.address for n in devnet.nodes}
    assert len(reader.contributions(node=devnet.nodes[1].address, round=3)) == 1
    probe = bytes.fromhex(results[1]["hashes"][42][2:])
    (hit,) = reader.contributions(delta_hash=probe)
    assert (hit.node, hit.round, hit.sample_count) == (devnet.nodes[1].address, 43, 52)
    assert hit.epsilon_spent == pytest.approx(0.42)
    ref = reader.contribution(probe)
    assert ref is not None and (ref.author, ref.round, ref.sample_count) == (hit.node, 43, 52)
    # block-range filter: only the last block's events
    last = everything[-1].block_number
    assert reader.contributions(from_block=last) == [c for c in everything if c.block_number >= last]


def test_withdrawals_by_token_and_by_custodian(ledger_net: DevnetInfo) -> None:
    devnet = ledger_net
    custodian = AuditLedger(devnet.rpc_url, devnet.contract, devnet.nodes[0].private_key)
    relayer = AuditLedger(devnet.rpc_url, devnet.contract, devnet.relayer_key)
    token = os.urandom(32)
    subject = keccak(b"subject-of-node-0")

    by_token = relayer.withdraw_consent_with_token(token)
    by_node = custodian.withdraw_consent(subject)

    assert relayer.is_withdrawn(keccak(token)) and not relayer.is_withdrawn(subject)
    assert relayer.is_withdrawn_for(subject, custodian.account or "")  # binds its sender only
    listed = relayer.withdrawals()
    assert [(w.subject, w.by, w.by_token) for w in listed] == [
        (keccak(token), relayer.account, True),
        (subject, custodian.account, False),
    ]
    assert relayer.withdrawals(subject=subject) == [by_node.event]
    assert by_token.event is not None and by_token.event.by_token
    with pytest.raises(AlreadyWithdrawn):
        custodian.withdraw_consent_with_token(token)

    admin = AuditLedger(devnet.rpc_url, devnet.contract, devnet.admin_key)
    admin.revoke_node(custodian.account or "")
    with pytest.raises(NodeRevoked, match="revoked"):
        custodian.withdraw_consent(keccak(b"another subject"))


def test_restart_keeps_records(devnet_dir: Path) -> None:
    info = start_devnet(devnet_dir, nodes=1, port=free_port(), peer_id_of=peer_id_bytes_from_secret, die_with_parent=True)
    node = AuditLedger(info.rpc_url, info.contract, info.nodes[0].private_key)
    recorded = node.record_contribution(keccak(b"kept"), BASE, 5, 64, ROOT, 1.5)
    node.withdraw_consent(keccak(b"kept-subject"))

    assert stop_devnet(devnet_dir)
    assert not devnet_status(devnet_dir).running
    with pytest.raises(ChainUnavailable):
        node.block_number()
    again = start_devnet(devnet_dir, nodes=1, peer_id_of=peer_id_bytes_from_secret, die_with_parent=True)

    assert again.contract == info.contract and again.nodes == info.nodes
    assert again.anvil_pid != info.anvil_pid
    reader = AuditLedger(again.rpc_url, again.contract)
    assert reader.contributions(node=info.nodes[0].address) == [recorded.event]
    assert reader.is_withdrawn_for(keccak(b"kept-subject"), info.nodes[0].address)
    assert reader.is_active_node(info.nodes[0].address)
    kept = reader.node_info(info.nodes[0].address)  # the node's slot survives too
    assert kept is not None and (kept.sample_cap, kept.last_round) == (DEFAULT_SAMPLE_CAP, 5)
    # and it keeps working after the restart (nonce taken from the chain), rounds go on
    fresh = AuditLedger(again.rpc_url, again.contract, info.nodes[0].private_key)
    with pytest.raises(StaleRound) as stale:
        fresh.record_contribution(keccak(b"after"), BASE, 5, 64, ROOT, 0.0)
    assert stale.value.error_args == (info.nodes[0].address, 5, 5)
    fresh.record_contribution(keccak(b"after"), BASE, 6, 64, ROOT, 0.0)


def test_privacy_budget_is_enforced_on_a_chain_node(ledger_net: DevnetInfo) -> None:
    devnet = ledger_net
    admin = AuditLedger(devnet.rpc_url, devnet.contract, devnet.admin_key)
    node = AuditLedger(devnet.rpc_url, devnet.contract, devnet.nodes[1].private_key)
    address = devnet.nodes[1].address
    changed = admin.set_privacy_budget(address, 0.5)
    node.record_contribution(keccak(b"b1"), BASE, 1, 10, ROOT, 0.3)

    # anvil's and Hardhat's revert data decode the same, at estimation and after mining
    with pytest.raises(PrivacyBudgetExceeded) as early:
        node.record_contribution(keccak(b"b2"), BASE, 2, 10, ROOT, 0.3)
    mined = node.submit_contribution(keccak(b"b2"), BASE, 2, 10, ROOT, 0.3, gas=80_000)
    with pytest.raises(PrivacyBudgetExceeded) as late:
        node.wait_for(mined)

    assert early.value.error_args == late.value.error_args == (address, 300_000, 300_000, 500_000)
    info = node.node_info(address)
    assert info is not None and (info.epsilon_spent, info.epsilon_budget, info.last_round) == (0.3, 0.5, 1)
    changes = node.budget_changes(node=address)
    assert [c.epsilon_budget for c in changes] == [DEFAULT_EPSILON_BUDGET, 0.5]  # registration, change
    assert changes[-1] == changed.event
    node.record_contribution(keccak(b"b2"), BASE, 2, 10, ROOT, 0.2)  # exactly the rest
    assert node.node_info(address).epsilon_spent_micros == 500_000  # type: ignore[union-attr]


def test_devnet_identities_are_fresh_and_consistent(devnet: DevnetInfo, devnet_dir: Path) -> None:
    assert (devnet_dir / "devnet.json").stat().st_mode & 0o777 == 0o600
    reader = AuditLedger(devnet.rpc_url, devnet.contract)
    for node in devnet.nodes:
        assert eth_address_from_peer_id(node.peer_id) == node.address
        info = reader.node_info(node.address)
        assert info is not None and info.active and info.peer_id == node.peer_id
    # anvil's well-known dev accounts are not used as identities
    assert account_address(ANVIL_FUNDER_KEY) not in {n.address for n in devnet.nodes}
    assert reader.admin() == devnet.admin != account_address(ANVIL_FUNDER_KEY)
    assert DevnetInfo.load(devnet_dir) == devnet
    assert [(n.sample_cap, n.last_round, n.revoked_at_block, n.epsilon_budget, n.epsilon_spent)
            for n in reader.registered_nodes()] == [
        (DEFAULT_SAMPLE_CAP, 0, None, DEFAULT_EPSILON_BUDGET, 0.0)] * len(devnet.nodes)


def test_bad_input_and_wrong_senders_are_clear_errors(ledger_net: DevnetInfo) -> None:
    devnet = ledger_net
    node = AuditLedger(devnet.rpc_url, devnet.contract, devnet.nodes[0].private_key)
    with pytest.raises(InvalidInput, match="delta_hash must be 32 bytes"):
        node.record_contribution(b"short", BASE, 1, 1, ROOT, 0.1)
    with pytest.raises(InvalidInput, match="EIP-55"):
        node.node_info(_break_checksum(devnet.nodes[0].address))
    assert node.node_info(account_address(new_private_key())) is None  # unknown address
    with pytest.raises(NotAdmin):  # a node key is the wrong key for admin work
        node.revoke_node(devnet.nodes[1].address)
    stranger = AuditLedger(devnet.rpc_url, devnet.contract, devnet.relayer_key)
    with pytest.raises(NotRegistered):
        stranger.record_contribution(keccak(b"x"), BASE, 1, 1, ROOT, 0.1)
    with pytest.raises(SampleCountOverCap) as over:  # the node's revert data decodes the same
        node.record_contribution(keccak(b"z"), BASE, 1, DEFAULT_SAMPLE_CAP + 1, ROOT, 0.1)
    assert over.value.error_args == (node.account, DEFAULT_SAMPLE_CAP + 1, DEFAULT_SAMPLE_CAP)
    admin = AuditLedger(devnet.rpc_url, devnet.contract, devnet.admin_key)
    unfunded = new_private_key()
    admin.register_node(account_address(unfunded), b"\x00\x25unfunded", 10)
    with pytest.raises(InsufficientFunds):
        AuditLedger(devnet.rpc_url, devnet.contract, unfunded).record_contribution(
            keccak(b"y"), BASE, 1, 1, ROOT, 0.1
        )
    with pytest.raises(ContractNotFound):
        AuditLedger(devnet.rpc_url, devnet.nodes[0].address).genesis_model()


def test_chain_not_running_is_chain_unavailable() -> None:
    ledger = AuditLedger(f"http://127.0.0.1:{free_port()}", "0x" + "11" * 20, new_private_key())
    with pytest.raises(ChainUnavailable, match="cannot reach"):
        ledger.contribution(keccak(b"x"))
    with pytest.raises(ChainUnavailable):
        ledger.record_contribution(keccak(b"x"), BASE, 1, 1, ROOT, 0.1)


def test_deploy_on_a_bare_chain_node(bare_rpc: str) -> None:
    ledger = AuditLedger.deploy(bare_rpc, ANVIL_FUNDER_KEY)
    assert ledger.has_code() and ledger.deployment is not None
    assert ledger.admin() == account_address(ANVIL_FUNDER_KEY)


def test_port_taken_and_missing_anvil(devnet_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port}"):
            start_devnet(devnet_dir, nodes=1, port=port, peer_id_of=peer_id_bytes_from_secret, die_with_parent=True)
    monkeypatch.setenv("MEDGOSSIP_ANVIL", str(devnet_dir / "no-such-anvil"))
    with pytest.raises(AnvilNotFound, match="MEDGOSSIP_ANVIL"):
        start_devnet(devnet_dir, nodes=1, port=free_port(), peer_id_of=peer_id_bytes_from_secret, die_with_parent=True)
