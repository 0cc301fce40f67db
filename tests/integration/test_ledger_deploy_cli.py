"""A consortium on a chain it did not start: `admin deploy` to a bare anvil, the
network.json every chain command and `node init` take, `admin fund`, `node
genesis-hash`, the peer's start-up checks against that chain, and `devnet start
--host`. Real anvil processes, the CLI in-process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from eth_utils import keccak
from web3 import Web3

from contracts.errors import ChainUnavailable
from contracts.ledger import AuditLedger, account_address, new_private_key, probe_chain
from contracts.network import NetworkInfo
from devnet import DevnetInfo, free_port, stop_devnet
from devnet.anvil import AnvilProcess, start_anvil, stop_anvil
from devnet.manage import ANVIL_FUNDER_KEY
from gossip.identity import load_or_create_secret, peer_id_from_secret, peer_id_to_bytes
from node.config import load_config
from node.errors import PeerError
from node.peer.preflight import check_funds, check_genesis, check_registration, config_genesis_hash
from tests.cli_helpers import call, one_clear_line, run

pytestmark = pytest.mark.slow  # anvil as a separate process


@pytest.fixture
def admin_key(tmp_path: Path) -> Path:
    """anvil's first dev account (funded on every anvil) as the admin's key file."""
    path = tmp_path / "admin.key"
    path.write_text(ANVIL_FUNDER_KEY[2:] + "\n")
    return path


def test_deploy_and_run_a_consortium_from_its_network_file(anvil: AnvilProcess, admin_key: Path, tmp_path: Path) -> None:
    network = tmp_path / "consortium" / "network.json"
    deployed = call("admin", "deploy", "--rpc", anvil.rpc_url, "--key", str(admin_key), "--out", str(network))
    assert deployed.returncode == 0, deployed.stderr

    text = network.read_text()
    data = json.loads(text)
    assert set(data) == {"format", "rpc_url", "chain_id", "contract", "deployment_block"}
    assert (data["format"], data["rpc_url"], data["chain_id"]) == ("medgossip-network/1", anvil.rpc_url, 31337)
    assert ANVIL_FUNDER_KEY[2:] not in text.lower() and str(network) in deployed.stdout
    assert data["contract"] in deployed.stdout
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    assert w3.eth.get_code(data["contract"], data["deployment_block"]) != b""
    assert w3.eth.get_code(data["contract"], data["deployment_block"] - 1) == b""  # the block it was born in
    assert AuditLedger(anvil.rpc_url, data["contract"]).admin() == account_address(ANVIL_FUNDER_KEY)
    one_clear_line(call("admin", "deploy", "--rpc", anvil.rpc_url, "--key", str(admin_key), "--out", str(network)),
                   "exists", "--force")

    # A hospital sets itself up from the file, with its announce address.
    hospital = tmp_path / "hospital-a"
    init = call("node", "init", "--dir", str(hospital), "--network", str(network),
                "--announce", "/ip4/198.18.0.11/tcp/4001")
    assert init.returncode == 0, init.stderr
    cfg = load_config(hospital / "node.toml", environ={})
    assert (cfg.rpc_url, cfg.contract, cfg.deployment_block) == (anvil.rpc_url, data["contract"], data["deployment_block"])
    assert cfg.listen == ("/ip4/0.0.0.0/tcp/4001",) and cfg.announce == ("/ip4/198.18.0.11/tcp/4001",)
    peer_id = peer_id_from_secret(load_or_create_secret(hospital / "node.key"))
    address = account_address("0x" + load_or_create_secret(hospital / "node.key").hex())
    assert f"/ip4/198.18.0.11/tcp/4001/p2p/{peer_id}" in init.stdout

    # The admin registers and funds it, and sets the genesis the hospital prints.
    chain = ("--network", str(network), "--key", str(admin_key))
    assert call("admin", "register-node", "--peer-id", peer_id, "--sample-cap", "320", *chain).returncode == 0
    one_clear_line(call("admin", "set-sample-cap", "--address", address, "--cap", "9", "--network", str(network)),
                   "no admin key", "--key")
    funded = call("admin", "fund", "--address", address, "--amount", "0.25", *chain)
    assert funded.returncode == 0, funded.stderr
    assert "balance now 0.25 ETH" in funded.stdout
    printed = call("node", "genesis-hash", "--config", str(hospital / "node.toml"))
    assert re.fullmatch(r"0x[0-9a-f]{64}\n", printed.stdout)
    assert printed.stdout.strip() == "0x" + config_genesis_hash(cfg).hex()
    assert call("admin", "set-genesis", "--hash", printed.stdout.strip(), *chain).returncode == 0

    # Every chain command reads the same file; the hospital's start-up checks pass.
    query = call("ledger", "query", "--network", str(network), "--json")
    assert [n["address"] for n in json.loads(query.stdout)["nodes"]] == [address]
    node = AuditLedger(cfg.rpc_url, cfg.contract, "0x" + load_or_create_secret(hospital / "node.key").hex(),
                       deployment_block=cfg.deployment_block)
    assert node.balance() == 25 * 10**16
    check_registration(node, address, peer_id)
    check_funds(node, address)
    check_genesis(node, config_genesis_hash(cfg), cfg)


def test_node_start_refuses_an_account_that_cannot_pay_in_one_line(anvil: AnvilProcess, admin_key: Path,
                                                                    tmp_path: Path) -> None:
    network = tmp_path / "network.json"
    assert call("admin", "deploy", "--rpc", anvil.rpc_url, "--key", str(admin_key), "--out", str(network)).returncode == 0
    assert call("node", "init", "--dir", str(tmp_path / "h"), "--network", str(network)).returncode == 0
    peer_id = peer_id_from_secret(load_or_create_secret(tmp_path / "h" / "node.key"))
    address = account_address("0x" + load_or_create_secret(tmp_path / "h" / "node.key").hex())
    assert call("admin", "register-node", "--peer-id", peer_id, "--sample-cap", "320", "--network", str(network),
                "--key", str(admin_key)).returncode == 0

    result = run("node", "start", "--config", str(tmp_path / "h" / "node.toml"), cwd=tmp_path)

    one_clear_line(result, f"account {address} holds 0 ETH", f"medgossip admin fund --address {address}")


def test_deploying_from_an_empty_account_is_one_line(anvil: AnvilProcess, tmp_path: Path) -> None:
    poor = tmp_path / "poor.key"
    poor.write_text(new_private_key()[2:])

    result = call("admin", "deploy", "--rpc", anvil.rpc_url, "--key", str(poor), "--out", str(tmp_path / "n.json"))

    one_clear_line(result, "cannot pay for gas")
    assert not (tmp_path / "n.json").exists()


FREE_GAS = ("--gas-price", "0", "--base-fee", "0", "--no-priority-fee")  # eth_gasPrice answers 0


@pytest.mark.parametrize(("extra", "refused"), [((), True), (FREE_GAS, False)])
def test_an_empty_account_starts_only_where_gas_is_free(tmp_path: Path, extra: tuple[str, ...], refused: bool) -> None:
    proc = start_anvil(free_port(), tmp_path / "state.json", tmp_path / "anvil.log", die_with_parent=True,
                       extra_args=extra)
    try:
        admin = AuditLedger.deploy(proc.rpc_url, ANVIL_FUNDER_KEY)
        key = new_private_key()
        admin.register_node(account_address(key), peer_id_to_bytes(peer_id_from_secret(bytes.fromhex(key[2:]))), 10)
        node = AuditLedger(proc.rpc_url, admin.address, key)
        assert node.balance() == 0
        if refused:
            with pytest.raises(PeerError, match=f"admin fund --address {node.account}"):
                check_funds(node, node.account or "")
        else:
            assert node.contribution_cost() == 0
            check_funds(node, node.account or "")
            recorded = node.record_contribution(keccak(b"d"), keccak(b"g"), 1, 10, keccak(b"r"), 0.0)
            assert recorded.block_number > 0 and node.balance() == 0  # it really costs nothing
    finally:
        stop_anvil(proc.pid)


def test_devnet_binds_the_host_it_is_given_and_keeps_it(tmp_path: Path) -> None:
    workdir = tmp_path / "devnet"
    port = free_port("127.0.0.2")
    started = call("devnet", "start", "--dir", str(workdir), "--host", "127.0.0.2", "--port", str(port), "--nodes", "1")
    try:
        assert started.returncode == 0, started.stderr
        info = DevnetInfo.load(workdir)
        assert (info.rpc_url, info.host) == (f"http://127.0.0.2:{port}", "127.0.0.2")
        assert probe_chain(info.rpc_url) == 31337
        with pytest.raises(ChainUnavailable):
            probe_chain(f"http://127.0.0.1:{port}")  # bound where asked, not everywhere
        shared = workdir / "network.json"
        assert NetworkInfo.load(shared) == NetworkInfo(info.rpc_url, 31337, info.contract, info.deployed_block)
        assert "private_key" not in shared.read_text() and info.admin_key[2:] not in shared.read_text()
        query = call("ledger", "query", "--network", str(shared), "--json")
        assert [n["address"] for n in json.loads(query.stdout)["nodes"]] == [info.nodes[0].address]

        fresh = account_address(new_private_key())  # on a devnet, the admin's key pays by default
        assert call("admin", "fund", "--address", fresh, "--amount", "1.5", "--devnet", str(workdir)).returncode == 0
        assert AuditLedger(info.rpc_url, info.contract).balance(fresh) == 15 * 10**17

        stop_devnet(workdir)
        assert call("devnet", "start", "--dir", str(workdir)).returncode == 0  # restart: same host and port
        assert DevnetInfo.load(workdir).rpc_url == info.rpc_url
    finally:
        stop_devnet(workdir)
