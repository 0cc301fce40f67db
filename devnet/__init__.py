"""The local development chain: anvil (on 127.0.0.1, or an address others reach) with
AuditLedger deployed.

    anvil.py    locate / start (detached, state persisted) / stop the anvil binary
    hardhat.py  start / stop a Hardhat network node (EDR): the second EVM the ledger
                tests run on (in memory, for a run only)
    manage.py   start_devnet / stop_devnet / devnet_status: deploy, fund, register
    info.py     DevnetInfo, DevNode: devnet.json (mode 0600, holds keys); beside it
                network.json (no keys: what other hosts need)
    processes.py  spawn: long-lived children that die with their parent
    errors.py   DevnetError hierarchy

Imports `contracts` only (never gossip or node).
"""

from __future__ import annotations

from devnet.anvil import ANVIL_ENV, find_anvil, free_port
from devnet.errors import (
    AnvilNotFound,
    DevnetError,
    DevnetFileError,
    DevnetNotRunning,
    DevnetStartFailed,
    PortInUse,
)
from devnet.info import DEVNET_FILE, DevNode, DevnetInfo
from devnet.manage import DEFAULT_PORT, DevnetStatus, devnet_status, start_devnet, stop_devnet

__all__ = [
    "ANVIL_ENV",
    "DEFAULT_PORT",
    "DEVNET_FILE",
    "AnvilNotFound",
    "DevNode",
    "DevnetError",
    "DevnetFileError",
    "DevnetInfo",
    "DevnetNotRunning",
    "DevnetStartFailed",
    "DevnetStatus",
    "PortInUse",
    "devnet_status",
    "find_anvil",
    "free_port",
    "start_devnet",
    "stop_devnet",
]
