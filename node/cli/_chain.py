"""Shared plumbing of the chain commands (devnet, admin, ledger, consent): which chain
and key to use, one-line errors, JSON forms of ledger records.

Heavy imports (web3 through contracts.ledger) happen inside the functions.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from contracts.ledger import AuditLedger
    from devnet.info import DevnetInfo

DEFAULT_DEVNET_DIR = Path("run/devnet")
DEFAULT_DEVNET_FILE = DEFAULT_DEVNET_DIR / "devnet.json"

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr and a non-zero exit."""
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the project's errors into `fail` lines (never a traceback)."""
    from contracts.errors import LedgerError
    from devnet.errors import DevnetError

    try:
        yield
    except (LedgerError, DevnetError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@dataclass(frozen=True)
class ChainTarget:
    """Where to talk to: RPC URL and contract, plus the devnet if one was used."""

    rpc_url: str
    contract: str
    devnet: DevnetInfo | None


def resolve_target(devnet: Path | None, rpc: str | None, contract: str | None) -> ChainTarget:
    """--rpc/--contract if both given, else the devnet file (default run/devnet)."""
    from devnet.info import DevnetInfo

    if (rpc is None) != (contract is None):
        fail("--rpc and --contract go together (or use --devnet)")
    if rpc is not None and contract is not None:
        info = DevnetInfo.load(devnet) if devnet is not None else None
        return ChainTarget(rpc, contract, info)
    info = DevnetInfo.load(devnet if devnet is not None else DEFAULT_DEVNET_FILE)
    return ChainTarget(info.rpc_url, info.contract, info)


def read_key_file(path: Path) -> str:
    """A private key from a file (64 hex characters, optional 0x, whitespace ok)."""
    if not path.exists():
        if _HEX64.match(str(path)):
            fail("--key takes a key FILE, not the key itself (keys on command lines leak)")
        fail(f"key file {path} not found")
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read key file {path}: {exc}")
    if not _HEX64.match(text):
        fail(f"key file {path} must hold 64 hex characters (a secp256k1 private key)")
    return "0x" + text.removeprefix("0x")


def open_ledger(target: ChainTarget, private_key: str | None = None) -> AuditLedger:
    from contracts.ledger import AuditLedger

    return AuditLedger(target.rpc_url, target.contract, private_key)


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
