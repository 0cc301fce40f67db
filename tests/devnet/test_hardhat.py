"""The Hardhat node devnet/hardhat.py starts: where anvil's dev key is funded, bound
where asked, gone when stopped; and a clear error when it cannot start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import devnet.hardhat
from contracts.errors import ChainUnavailable
from contracts.ledger import AuditLedger, account_address, probe_chain
from devnet.anvil import free_port
from devnet.errors import HardhatNotFound, PortInUse
from devnet.hardhat import running_hardhat, start_hardhat, stop_hardhat
from devnet.manage import ANVIL_FUNDER_KEY


@pytest.mark.slow  # a node process
def test_a_hardhat_node_is_anvils_twin_for_the_ledger_and_ends_when_stopped(tmp_path: Path) -> None:
    port = free_port()

    with running_hardhat(port, tmp_path / "hardhat.log") as node:
        chain_id = probe_chain(node.rpc_url)
        ledger = AuditLedger.deploy(node.rpc_url, ANVIL_FUNDER_KEY)  # anvil's dev key pays here too
        funded = ledger.balance(account_address(ANVIL_FUNDER_KEY))
        blocks = ledger.block_number()

    assert (node.rpc_url, chain_id) == (f"http://127.0.0.1:{port}", 31337)
    assert 9_999 * 10**18 < funded < 10_000 * 10**18  # 10,000 ETH less the deployment's gas
    assert blocks == 1  # automine: one block for the one transaction
    assert "Started HTTP and WebSocket JSON-RPC server" in node.log_file.read_text()
    with pytest.raises(ChainUnavailable):
        probe_chain(node.rpc_url)
    assert not Path(f"/proc/{node.pid}").exists()  # ended and reaped
    assert stop_hardhat(node) is False  # already stopped


def test_missing_hardhat_or_node_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devnet.hardhat, "_REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HardhatNotFound, match="make install"):
        start_hardhat(free_port(), tmp_path / "hardhat.log")

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HardhatNotFound, match="node is not on PATH"):
        start_hardhat(free_port(), tmp_path / "hardhat.log")
    assert not (tmp_path / "hardhat.log").exists()  # nothing was started


def test_a_taken_port_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port}"):
            start_hardhat(port, tmp_path / "hardhat.log")
    assert not (tmp_path / "hardhat.log").exists()
