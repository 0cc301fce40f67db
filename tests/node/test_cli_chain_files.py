"""Which chain a command uses (--network / --devnet / --rpc --contract, one place), and
the new chain commands' argument errors: one clear line, before any chain is asked.
No chain runs here: every RPC URL points at a closed port."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from contracts.network import NetworkInfo
from devnet.info import DevnetInfo
from node.cli._chain import resolve_target
from node.cli.peer import _with_chain
from node.config import NodeConfig
from tests.cli_helpers import call, one_clear_line

CONTRACT = "0x" + "ab" * 20
CLOSED = "http://127.0.0.1:9"


@pytest.fixture
def network(tmp_path: Path) -> Path:
    path = tmp_path / "network.json"
    NetworkInfo(CLOSED, 31337, CONTRACT, 77).save(path)
    return path


@pytest.fixture
def devnet_file(tmp_path: Path) -> Path:
    path = tmp_path / "devnet.json"
    DevnetInfo(rpc_url=CLOSED, chain_id=31337, contract=CONTRACT, admin_key="0x" + "22" * 32, admin="0x" + "33" * 20,
               relayer_key="0x" + "44" * 32, nodes=(), anvil_pid=None, state_file="s.json", port=9,
               log_file="anvil.log", deployed_block=5).save(path)
    return path


def test_a_network_file_gives_the_chain_and_its_deployment_block(network: Path) -> None:
    target = resolve_target(network, None, None)

    assert (target.rpc_url, target.contract, target.devnet, target.deployment_block) == (CLOSED, CONTRACT, None, 77)


def test_a_devnet_file_gives_its_names_and_deployment_block(devnet_file: Path) -> None:
    target = resolve_target(devnet_file, None, None)

    assert target.devnet is not None and target.deployment_block == 5


def test_explicit_rpc_and_contract_win_and_keep_the_block_only_for_the_same_contract(network: Path) -> None:
    same = resolve_target(network, "http://10.0.0.1:8545", CONTRACT)
    other = resolve_target(network, "http://10.0.0.1:8545", "0x" + "cd" * 20)

    assert (same.rpc_url, same.deployment_block) == ("http://10.0.0.1:8545", 77)
    assert other.deployment_block == 0


def test_network_is_accepted_wherever_devnet_is(network: Path) -> None:
    for command in (["ledger", "query"], ["consent", "status", "--subject", "0x" + "11" * 32],
                    ["admin", "revoke-node", "--address", "0x" + "12" * 20, "--key", "nope.key"]):
        result = call(*command, "--network", str(network))
        assert "No such option" not in result.stderr, (command, result.stderr)
        assert result.returncode != 0  # the chain at CLOSED is not there (or the key file is not)
    one_clear_line(call("ledger", "query", "--network", str(network)), "cannot reach the chain at http://127.0.0.1:9")


def test_a_missing_chain_file_names_both_kinds(tmp_path: Path) -> None:
    one_clear_line(call("ledger", "query", "--network", str(tmp_path / "nope.json")),
                   "nope.json not found", "admin deploy", "devnet start")


def test_node_start_takes_the_chain_from_its_network_file(network: Path, devnet_file: Path) -> None:
    from_network = _with_chain(NodeConfig(network=network))
    from_devnet = _with_chain(NodeConfig(devnet=devnet_file))
    explicit = _with_chain(NodeConfig(network=network, rpc_url="http://10.0.0.1:8545", contract=CONTRACT))

    assert (from_network.rpc_url, from_network.contract, from_network.deployment_block) == (CLOSED, CONTRACT, 77)
    assert (from_devnet.rpc_url, from_devnet.deployment_block) == (CLOSED, 5)
    assert dataclasses.astuple(explicit) == dataclasses.astuple(
        NodeConfig(network=network, rpc_url="http://10.0.0.1:8545", contract=CONTRACT))


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["admin", "fund", "--address", "0x1234", "--amount", "1"], ["is not an Ethereum address"]),
        (["admin", "fund", "--address", "0x" + "12" * 20, "--amount", "lots"], ["--amount", "not a number of ether"]),
        (["admin", "fund", "--address", "0x" + "12" * 20, "--amount", "-1"], ["--amount", "positive"]),
        (["admin", "fund", "--address", "0x" + "12" * 20, "--amount", "1e-19"], ["--amount", "at most 18 decimals"]),
        (["admin", "fund", "--address", "0x" + "12" * 20, "--amount", "nan"], ["--amount", "positive"]),
        (["admin", "deploy", "--rpc", "127.0.0.1:8545", "--key", "k"], ["--rpc", "not an http(s) JSON-RPC URL"]),
        (["admin", "deploy", "--rpc", CLOSED, "--key", "missing.key"], ["key file missing.key not found"]),
        (["devnet", "start", "--host", "0.0.0.0"], ["--host", "every interface", "198.18.0.1"]),
        (["devnet", "start", "--host", "chain.example.org"], ["--host", "is not an IP address"]),
    ],
)
def test_chain_command_arguments_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               args: list[str], needles: list[str]) -> None:
    monkeypatch.chdir(tmp_path)

    one_clear_line(call(*args), *needles)

    assert not (tmp_path / "run").exists() and not (tmp_path / "network.json").exists()


def test_deploy_refuses_to_overwrite_a_network_file_before_deploying(tmp_path: Path, network: Path) -> None:
    key = tmp_path / "admin.key"
    key.write_text("11" * 32)

    one_clear_line(call("admin", "deploy", "--rpc", CLOSED, "--key", str(key), "--out", str(network)),
                   "exists", "--force")
    one_clear_line(call("admin", "deploy", "--rpc", CLOSED, "--key", str(key), "--out", str(tmp_path)), "is a folder")
    one_clear_line(call("admin", "deploy", "--rpc", CLOSED, "--key", str(key), "--out", str(tmp_path / "new.json")),
                   "cannot reach the chain at http://127.0.0.1:9")
    assert not (tmp_path / "new.json").exists()
