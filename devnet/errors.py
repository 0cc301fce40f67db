"""Errors of the local devnet (anvil) management.

`DevnetError` derives from the project's root `MedgossipError` (in `gossip.errors`, the
lowest package, which imports nothing of ours); the whole project tree is drawn in
`node/errors.py`.

    MedgossipError
    └── DevnetError
        ├── AnvilNotFound        the anvil binary is not installed (run `make install`)
        ├── HardhatNotFound      the hardhat package or node is not installed (the
        │                        second EVM the ledger tests run on: `make install`)
        ├── PortInUse            the RPC port on the chosen address is taken
        ├── DevnetStartFailed    anvil exited, never answered, or cannot bind the
        │                        address; the message quotes its log
        ├── DevnetNotRunning     no devnet.json, or its anvil is not running
        └── DevnetFileError      devnet.json is missing, unreadable or malformed

Chain-side failures while deploying or registering surface as `contracts.errors`
exceptions (LedgerError), unchanged.
"""

from __future__ import annotations

from gossip.errors import MedgossipError

__all__ = [
    "AnvilNotFound",
    "DevnetError",
    "DevnetFileError",
    "DevnetNotRunning",
    "DevnetStartFailed",
    "HardhatNotFound",
    "PortInUse",
]


class DevnetError(MedgossipError):
    """Base of devnet errors."""


class AnvilNotFound(DevnetError):
    """No anvil binary where expected."""


class HardhatNotFound(DevnetError):
    """No hardhat package (or no node to run it) where expected."""


class PortInUse(DevnetError):
    """The requested port is already bound on the chosen address."""


class DevnetStartFailed(DevnetError):
    """anvil did not come up."""


class DevnetNotRunning(DevnetError):
    """The devnet of this directory is not running."""


class DevnetFileError(DevnetError):
    """devnet.json cannot be read or written."""
