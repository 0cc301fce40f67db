"""Real-chain fixtures: an anvil on a free port in tmp_path, a devnet (anvil +
AuditLedger + registered dev nodes) built by the same code as `medgossip devnet`, and a
bare Hardhat node (the second EVM, devnet/hardhat.py). All die with the test process,
even if it is killed hard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.ledger import AuditLedger, account_address, new_private_key, send_ether
from devnet import DevnetInfo, DevNode, free_port, start_devnet, stop_devnet
from devnet.anvil import AnvilProcess, start_anvil, stop_anvil
from devnet.hardhat import HardhatProcess, running_hardhat
from devnet.manage import ANVIL_FUNDER_KEY, DEFAULT_SAMPLE_CAP, NODE_FUNDS
from gossip.identity import peer_id_bytes_from_secret


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[AnvilProcess]:
    """A bare anvil (no contract) on 127.0.0.1:<free port>, stopped afterwards."""
    proc = start_anvil(free_port(), tmp_path / "anvil-state.json", tmp_path / "anvil.log", die_with_parent=True)
    try:
        yield proc
    finally:
        stop_anvil(proc.pid)


@pytest.fixture
def hardhat(tmp_path: Path) -> Iterator[HardhatProcess]:
    """A bare Hardhat node (no contract) on 127.0.0.1:<free port>, stopped afterwards."""
    with running_hardhat(free_port(), tmp_path / "hardhat.log") as process:
        yield process


@pytest.fixture
def devnet_dir(tmp_path: Path) -> Iterator[Path]:
    """A devnet directory; whatever devnet runs there is stopped afterwards."""
    workdir = tmp_path / "devnet"
    try:
        yield workdir
    finally:
        if (workdir / "devnet.json").exists():
            stop_devnet(workdir)


@pytest.fixture
def devnet(devnet_dir: Path) -> DevnetInfo:
    """A running devnet with two registered dev nodes."""
    return start_devnet(devnet_dir, nodes=2, port=free_port(), peer_id_of=peer_id_bytes_from_secret,
                        die_with_parent=True)


CHAINS = ("anvil", pytest.param("hardhat", marks=pytest.mark.slow))


@pytest.fixture(params=CHAINS)
def ledger_net(request: pytest.FixtureRequest) -> DevnetInfo:
    """A devnet with two registered dev nodes: anvil's, or the same provisioned on a
    Hardhat node (anvil's first dev key is funded there too)."""
    if request.param == "anvil":
        return request.getfixturevalue("devnet")
    return _devnet_on(request.getfixturevalue("hardhat"))


@pytest.fixture(params=CHAINS)
def bare_rpc(request: pytest.FixtureRequest) -> str:
    """The RPC URL of a chain node with no contract: anvil or Hardhat."""
    node: AnvilProcess | HardhatProcess = request.getfixturevalue(request.param)
    return node.rpc_url


def _devnet_on(node: HardhatProcess) -> DevnetInfo:
    """What `start_devnet` provisions (a funded admin and relayer, AuditLedger, two
    funded nodes registered with the default cap and budget), on a Hardhat node."""
    admin_key, relayer_key = new_private_key(), new_private_key()
    for key in (admin_key, relayer_key):
        send_ether(node.rpc_url, ANVIL_FUNDER_KEY, account_address(key), NODE_FUNDS)
    admin = AuditLedger.deploy(node.rpc_url, admin_key)
    nodes = []
    for index in range(2):
        key = new_private_key()
        dev = DevNode(f"node-{index}", account_address(key), key, peer_id_bytes_from_secret(bytes.fromhex(key[2:])))
        send_ether(node.rpc_url, ANVIL_FUNDER_KEY, dev.address, NODE_FUNDS)
        admin.register_node(dev.address, dev.peer_id, DEFAULT_SAMPLE_CAP)
        nodes.append(dev)
    return DevnetInfo(
        rpc_url=node.rpc_url, chain_id=admin.chain_id, contract=admin.address, admin_key=admin_key,
        admin=account_address(admin_key), relayer_key=relayer_key, nodes=tuple(nodes), anvil_pid=None,
        state_file="", port=node.port, log_file=str(node.log_file),
        deployed_block=admin.deployment.block_number if admin.deployment else 0,
    )
