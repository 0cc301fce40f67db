"""Real-chain fixtures: an anvil on a free port in tmp_path, and a devnet (anvil +
AuditLedger + registered dev nodes) built by the same code as `medgossip devnet`.
Both die with the test process, even if it is killed hard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet import DevnetInfo, free_port, start_devnet, stop_devnet
from devnet.anvil import AnvilProcess, start_anvil, stop_anvil
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
