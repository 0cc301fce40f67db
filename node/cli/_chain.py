"""Shared plumbing of the chain commands (devnet, admin, ledger, consent): which chain
and key to use, JSON forms of ledger records. Errors end at `node.cli._boundary`.

Which chain: `--rpc URL --contract ADDR`, else a chain file given by `--devnet` or
`--network` (one option: a network.json, marked by its "format", or a devnet.json),
else run/devnet/devnet.json. `resolve_target` is the one place that decides.

Heavy imports (web3 through contracts.ledger) happen inside the functions.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from node.cli._boundary import fail

if TYPE_CHECKING:
    from contracts.ledger import AuditLedger
    from contracts.network import NetworkInfo
    from devnet.info import DevnetInfo

DEFAULT_DEVNET_DIR = Path("run/devnet")
DEFAULT_DEVNET_FILE = DEFAULT_DEVNET_DIR / "devnet.json"

out = Console(highlight=False)

_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ChainTarget:
    """Where to talk to: RPC URL and contract, plus the devnet if one was used."""

    rpc_url: str
    contract: str
    devnet: DevnetInfo | None
    deployment_block: int = 0
    """event queries start here (the network file's, or the devnet's deployment)."""


def check_address(value: str, what: str) -> str:
    """An Ethereum address (0x + 40 hex; mixed case must be EIP-55), checked without I/O."""
    from eth_utils import is_checksum_address, is_hex_address

    body = value[2:]
    mixed_case = body != body.lower() and body != body.upper()
    if not value.startswith("0x") or not is_hex_address(value):
        fail(f"{what} {value!r} is not an Ethereum address: 0x and 40 hex characters")
    if mixed_case and not is_checksum_address(value):
        fail(f"{what} {value!r} has a wrong EIP-55 checksum: check it, or write it in lower case")
    return value


def check_node_ref(value: str, what: str) -> str:
    """A node given as an address (checked now) or a dev node name (resolved later)."""
    return check_address(value, what) if value.lower().startswith("0x") else value


def resolve_target(devnet: Path | None, rpc: str | None, contract: str | None) -> ChainTarget:
    """--rpc/--contract if both given, else the chain file `devnet` (--devnet or
    --network: a devnet.json or a network.json), else run/devnet/devnet.json.

    The flags are checked before any file is read.
    """
    from devnet.info import DevnetInfo

    if (rpc is None) != (contract is None):
        fail("--rpc and --contract go together (or use --devnet / --network)")
    if contract is not None:
        check_address(contract, "--contract")
    chain = load_chain_file(devnet) if devnet is not None else None
    if rpc is None or contract is None:
        chain = chain if chain is not None else load_chain_file(DEFAULT_DEVNET_FILE)
        rpc, contract = chain.rpc_url, chain.contract
    names = chain if isinstance(chain, DevnetInfo) else None
    return ChainTarget(rpc, contract, names, _deployed(chain, contract))


def load_chain_file(path: Path) -> DevnetInfo | NetworkInfo:
    """A network.json (it says so in its "format") or a devnet.json (a folder: its
    devnet.json). Errors are the files' own one-line errors."""
    from contracts.network import NetworkInfo, is_network_file
    from devnet.info import DevnetInfo

    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            data = None  # DevnetInfo.load words what is wrong with it
        if is_network_file(data):
            return NetworkInfo.from_json(data, str(path))
    elif path != DEFAULT_DEVNET_FILE and not path.exists():
        fail(f"{path} not found: give the network.json of `medgossip admin deploy` "
             "(or a devnet.json of `medgossip devnet start`)")
    return DevnetInfo.load(path)


def _deployed(chain: DevnetInfo | NetworkInfo | None, contract: str) -> int:
    """The deployment block the chain file gives for `contract` (0: unknown)."""
    from devnet.info import DevnetInfo

    if chain is None or chain.contract.lower() != contract.lower():
        return 0
    return chain.deployed_block if isinstance(chain, DevnetInfo) else chain.deployment_block


def read_key_file(path: Path) -> str:
    """A private key from a file (64 hex characters, optional 0x, whitespace ok)."""
    if not path.exists():
        if _HEX64.match(str(path)):
            fail("--key takes a key FILE, not the key itself (keys on command lines leak)")
        fail(f"key file {path} not found: --key takes the path of a file holding the key")
    try:
        text = path.read_text(encoding="ascii").strip()
    except UnicodeDecodeError:
        fail(f"key file {path} is not text: it must hold 64 hex characters (a secp256k1 private key)")
    except OSError as exc:
        fail(f"cannot read key file {path} ({exc.strerror or exc}): give a readable key file")
    if not _HEX64.match(text):
        fail(f"key file {path} must hold 64 hex characters (a secp256k1 private key)")
    return "0x" + text.removeprefix("0x")


def open_ledger(target: ChainTarget, private_key: str | None = None) -> AuditLedger:
    from contracts.ledger import AuditLedger

    return AuditLedger(target.rpc_url, target.contract, private_key, deployment_block=target.deployment_block)


def node_names(target: ChainTarget) -> dict[str, str]:
    """address -> dev node name, when the chain is a devnet."""
    if target.devnet is None:
        return {}
    return {node.address: node.name for node in target.devnet.nodes}


def resolve_node_address(target: ChainTarget, value: str) -> str:
    """A node address, or a devnet node name (node-0) turned into its address."""
    if target.devnet is not None and not value.lower().startswith("0x"):
        for node in target.devnet.nodes:
            if node.name == value:
                return node.address
        known = ", ".join(n.name for n in target.devnet.nodes) or "none"
        fail(f"no dev node named {value!r} (known: {known})")
    return value


def short(value: bytes | str, keep: int = 6) -> str:
    text = value if isinstance(value, str) else "0x" + value.hex()
    if len(text) <= 2 + 2 * keep:
        return text
    return f"{text[: 2 + keep]}…{text[-4:]}"


def jsonable(value: Any) -> Any:
    """Records -> JSON-ready values (bytes as 0x-hex)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {key: jsonable(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2) + "\n")
