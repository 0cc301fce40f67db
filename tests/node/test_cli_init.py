"""`node init` with addresses and a chain: what it writes, and one clear line for each
wrong option, before anything is written. No chain needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.network import NetworkInfo
from gossip.identity import load_or_create_secret, peer_id_from_secret
from node.config import load_config
from tests.cli_helpers import call, one_clear_line

CONTRACT = "0x" + "ab" * 20
OTHER = "16Uiu2HAmKDSUK5wSfKzLxqVo7wDt5gs5gxVnxWq9vuUyyN4cAZVw"
"""a secp256k1 peer ID (another hospital's)."""


@pytest.fixture
def network(tmp_path: Path) -> Path:
    path = tmp_path / "network.json"
    NetworkInfo("http://198.18.0.1:8545", 31337, CONTRACT, 42).save(path)
    return path


def test_init_writes_addresses_and_the_network_into_node_toml(tmp_path: Path, network: Path) -> None:
    folder = tmp_path / "hospital"
    result = call("node", "init", "--dir", str(folder), "--network", str(network),
                  "--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip6/::/tcp/4001",
                  "--announce", "/ip4/198.18.0.11/tcp/4001", "--announce", "/dns4/a.example.org/tcp/4001",
                  "--bootstrap", f"/ip4/198.18.0.12/tcp/4001/p2p/{OTHER}")

    assert result.returncode == 0, result.stderr
    cfg = load_config(folder / "node.toml", environ={})
    assert cfg.listen == ("/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001")
    assert cfg.announce == ("/ip4/198.18.0.11/tcp/4001", "/dns4/a.example.org/tcp/4001")
    assert cfg.bootstrap == (f"/ip4/198.18.0.12/tcp/4001/p2p/{OTHER}",)
    assert (cfg.rpc_url, cfg.contract, cfg.deployment_block) == ("http://198.18.0.1:8545", CONTRACT, 42)
    peer_id = peer_id_from_secret(load_or_create_secret(folder / "node.key"))
    assert f"/ip4/198.18.0.11/tcp/4001/p2p/{peer_id}" in result.stdout
    assert "admin fund --address" in result.stdout


def test_init_defaults_to_the_fixed_port_on_every_interface(tmp_path: Path) -> None:
    result = call("node", "init", "--dir", str(tmp_path / "n"), "--rpc-url", "http://10.0.0.1:8545",
                  "--contract", CONTRACT)

    assert result.returncode == 0, result.stderr
    cfg = load_config(tmp_path / "n" / "node.toml", environ={})
    assert cfg.listen == ("/ip4/0.0.0.0/tcp/4001",)
    assert (cfg.rpc_url, cfg.contract, cfg.deployment_block) == ("http://10.0.0.1:8545", CONTRACT, 0)
    assert "4001" in call("node", "init", "--help").stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--listen", "/ip4/1.2.3/tcp/4001"], ["--listen", "is not a multiaddr", "/ip4/0.0.0.0/tcp/4001"]),
        (["--listen", "/ip4/0.0.0.0/udp/4001"], ["--listen", "must be /ip4/ADDR/tcp/PORT"]),
        (["--listen", "4001"], ["--listen", "is not a multiaddr"]),
        (["--announce", "/ip4/0.0.0.0/tcp/4001"], ["--announce", "0.0.0.0 is no address to dial"]),
        (["--announce", "/ip6/::/tcp/4001"], ["--announce", ":: is no address to dial"]),
        (["--announce", "/ip4/198.18.0.11/tcp/0"], ["--announce", "port 0"]),
        (["--announce", f"/ip4/198.18.0.11/tcp/4001/p2p/{OTHER}"], ["--announce", "without /p2p/"]),
        (["--bootstrap", "/ip4/198.18.0.12/tcp/4001"], ["--bootstrap", "/p2p/PEER_ID"]),
        (["--bootstrap", "/ip4/198.18.0.12/tcp/4001/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"],
         ["--bootstrap", "not a medgossip peer ID"]),
        (["--bootstrap", f"/ip4/0.0.0.0/tcp/4001/p2p/{OTHER}"], ["--bootstrap", "no address to dial"]),
        (["--rpc-url", "http://10.0.0.1:8545"], ["--rpc-url and --contract go together"]),
        (["--rpc-url", "10.0.0.1:8545", "--contract", CONTRACT], ["--rpc-url", "not an http(s)"]),
        (["--rpc-url", "http://10.0.0.1:8545", "--contract", "0x12"], ["--contract", "not an Ethereum address"]),
    ],
)
def test_a_wrong_option_is_one_line_and_nothing_is_written(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    folder = tmp_path / "n"

    one_clear_line(call("node", "init", "--dir", str(folder), *args), *needles)

    assert not (folder / "node.toml").exists()


def test_bootstrapping_from_itself_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "n"
    peer_id = peer_id_from_secret(load_or_create_secret(folder / "node.key"))  # the key init will keep

    one_clear_line(call("node", "init", "--dir", str(folder), "--bootstrap", f"/ip4/198.18.0.12/tcp/4001/p2p/{peer_id}"),
                   "is this node itself")

    assert not (folder / "node.toml").exists()


def test_an_existing_config_is_kept_and_options_for_it_refused(tmp_path: Path, network: Path) -> None:
    folder = tmp_path / "n"
    assert call("node", "init", "--dir", str(folder)).returncode == 0
    before = (folder / "node.toml").read_text()

    one_clear_line(call("node", "init", "--dir", str(folder), "--network", str(network)),
                   "exists and is kept", "--network")

    assert (folder / "node.toml").read_text() == before


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"format": "medgossip-network/1", "rpc_url": "http://x:1", "chain_id": 1, "contract": "0x12"}',
         "no 'deployment_block' entry"),
        ('{"format": "medgossip-network/1", "rpc_url": "x:1", "chain_id": 1, "contract": "0x12", "deployment_block": 0}',
         "not an http(s) URL"),
        ('{"rpc_url": "http://x:1"}', "is not a network file"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_a_bad_network_file_is_one_line(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "network.json"
    path.write_text(content)

    one_clear_line(call("node", "init", "--dir", str(tmp_path / "n"), "--network", str(path)), str(path), needle)
    one_clear_line(call("node", "init", "--dir", str(tmp_path / "n"), "--network", str(tmp_path / "nope.json")),
                   "nope.json not found", "admin deploy")
