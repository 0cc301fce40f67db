"""A peer's start-up checks against the chain (eth-tester, real contract): each failure
says who fixes what, in one line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from contracts.ledger import AuditLedger, new_private_key
from gossip.identity import peer_id_from_secret, peer_id_to_bytes
from node.config import NodeConfig
from node.errors import PeerError
from node.learner import Learner
from node.peer.preflight import check_funds, check_genesis, check_registration, config_genesis_hash
from node.peer.process import learner_settings
from tests.contracts.conftest import Chain
from tests.contracts.peer_fixtures import real_node
from tests.node.learning_data import digits_image_set


def _unfunded_node(chain: Chain, admin: AuditLedger) -> tuple[AuditLedger, str]:
    key = new_private_key()
    peer_id = peer_id_from_secret(bytes.fromhex(key[2:]))
    admin.register_node(Account.from_key(key).address, peer_id_to_bytes(peer_id), 100)
    return chain.handle(key), peer_id


def test_an_unregistered_key_is_sent_to_the_admin(chain: Chain) -> None:
    key = new_private_key()
    handle = chain.handle(key)

    with pytest.raises(PeerError, match="admin register-node"):
        check_registration(handle, handle.account or "", peer_id_from_secret(bytes.fromhex(key[2:])))


def test_an_account_that_cannot_pay_for_one_contribution_is_refused(chain: Chain, admin: AuditLedger) -> None:
    node, peer_id = _unfunded_node(chain, admin)
    address = node.account or ""
    assert check_registration(node, address, peer_id).sample_cap == 100

    with pytest.raises(PeerError) as refused:
        check_funds(node, address)

    message = str(refused.value)
    assert f"{address} holds 0 ETH" in message
    assert f"medgossip admin fund --address {address}" in message
    assert "\n" not in message


def test_a_funded_account_passes_and_can_then_record(chain: Chain, admin: AuditLedger) -> None:
    node = real_node(chain, admin)  # 1 ETH

    check_funds(node.ledger, node.address)

    assert node.ledger.balance() >= node.ledger.contribution_cost()


def test_no_genesis_on_chain_gives_the_admin_the_hash_to_set(chain: Chain) -> None:
    config = NodeConfig()
    ours = config_genesis_hash(config)

    with pytest.raises(PeerError) as refused:
        check_genesis(chain.handle(), ours, config)

    assert f"medgossip admin set-genesis --hash 0x{ours.hex()}" in str(refused.value)


def test_a_genesis_mismatch_says_this_node_must_change(chain: Chain, admin: AuditLedger) -> None:
    consortium = NodeConfig()
    admin.set_genesis_model(config_genesis_hash(consortium))
    check_genesis(chain.handle(), config_genesis_hash(consortium), consortium)  # the same config passes
    stray = replace(consortium, genesis_seed=7)

    with pytest.raises(PeerError) as refused:
        check_genesis(chain.handle(), config_genesis_hash(stray), stray)

    message = str(refused.value)
    assert "fix this node" in message and "genesis_seed=7" in message and "image_size=8" in message
    assert "medgossip node genesis-hash" in message


def test_the_printed_genesis_hash_is_the_one_the_learner_builds() -> None:
    images = digits_image_set(40)
    for config in (NodeConfig(), NodeConfig(genesis_seed=3), NodeConfig(num_classes=4)):
        assert config_genesis_hash(config) == Learner(learner_settings(config), images).genesis_hash
    assert config_genesis_hash(NodeConfig()) != config_genesis_hash(NodeConfig(genesis_seed=3))


def test_prepare_checks_the_chain_and_reads_it_from_the_deployment_block(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.peer.loop import Peer

    admin = AuditLedger.deploy_with_web3(chain.w3, chain.admin_key)  # a second ledger, deployed later
    floor = admin.deployment_block
    keys = [chain.funded_key(), chain.funded_key()]
    for key, cap in zip(keys, (1_000, 64)):
        peer_id = peer_id_from_secret(bytes.fromhex(key[2:]))
        admin.register_node(Account.from_key(key).address, peer_id_to_bytes(peer_id), cap)
    other = AuditLedger.from_web3(chain.w3, admin.address, keys[0], deployment_block=floor)
    other.record_contribution(keccak(b"d"), keccak(b"g"), 1, 30, keccak(b"r"), 0.0)
    config = NodeConfig(checkpoint_dir=tmp_path / "checkpoint", deployment_block=floor)
    learner = Learner(learner_settings(config), digits_image_set(40))
    admin.set_genesis_model(learner.genesis_hash)
    ledger = AuditLedger.from_web3(chain.w3, admin.address, keys[1], deployment_block=config.deployment_block)
    peer = Peer(config, bytes.fromhex(keys[1][2:]), ledger, learner)
    asked_from: list[int] = []
    get_logs = chain.w3.eth.get_logs

    def recording(params: dict[str, str]) -> object:
        asked_from.append(int(params["fromBlock"], 16))
        return get_logs(params)  # type: ignore[arg-type]

    monkeypatch.setattr(chain.w3.eth, "get_logs", recording)

    peer.prepare()

    assert peer.sample_cap == 64
    assert peer.chain.mean_sample_count(0.0) == 30.0
    assert asked_from and min(asked_from) == floor > 1  # never from block 0
