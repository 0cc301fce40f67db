"""network.json: what hospitals share to reach one consortium's ledger.

    {"format": "medgossip-network/1", "rpc_url": "http://198.18.0.1:8545",
     "chain_id": 31337, "contract": "0x...", "deployment_block": 1}

`medgossip admin deploy` writes it (and `devnet start` beside devnet.json); `node init
--network` and every chain command's `--network` read it. It holds no keys, so it can
be mailed or published. No web3 import here: the CLI reads it before anything heavy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import NetworkFileError
from gossip.files import atomic_write

__all__ = ["NETWORK_FILE", "NETWORK_FORMAT", "NetworkInfo", "is_network_file"]

NETWORK_FORMAT = "medgossip-network/1"
NETWORK_FILE = "network.json"
_REDO = "it is written by `medgossip admin deploy`; ask the consortium admin for the file"


@dataclass(frozen=True)
class NetworkInfo:
    """One deployment of AuditLedger: where its chain answers and where it starts."""

    rpc_url: str
    chain_id: int
    contract: str
    deployment_block: int

    def to_json(self) -> str:
        data = {"format": NETWORK_FORMAT, "rpc_url": self.rpc_url, "chain_id": self.chain_id,
                "contract": self.contract, "deployment_block": self.deployment_block}
        return json.dumps(data, indent=2) + "\n"

    def save(self, path: str | os.PathLike[str], *, replace: bool = False) -> None:
        """Write atomically, readable by all (it holds no secret). An existing file
        names a deployed contract that hospitals may use: kept unless `replace`."""
        target = Path(path)
        try:
            atomic_write(target, self.to_json(), mode=0o644, exclusive=not replace)
        except FileExistsError as exc:
            raise NetworkFileError(
                f"{target} exists (it names the contract at {_contract_in(target)}): "
                "choose another --out, or pass --force to replace it"
            ) from exc
        except OSError as exc:
            raise NetworkFileError(f"cannot write {target}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NetworkInfo:
        """Read and check a network.json (a folder means FOLDER/network.json)."""
        target = Path(path)
        if target.is_dir():
            target = target / NETWORK_FILE
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NetworkFileError(f"{target} not found: {_REDO}") from exc
        except json.JSONDecodeError as exc:
            raise NetworkFileError(f"{target} is not valid JSON ({exc.msg}, line {exc.lineno}): {_REDO}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise NetworkFileError(f"cannot read {target} ({reason}): {_REDO}") from exc
        return cls.from_json(data, str(target))

    @classmethod
    def from_json(cls, data: Any, where: str) -> NetworkInfo:
        if not is_network_file(data):
            raise NetworkFileError(f"{where} is not a network file (no \"format\": \"{NETWORK_FORMAT}\"): {_REDO}")
        try:
            info = cls(
                rpc_url=_text(data["rpc_url"]),
                chain_id=_count(data["chain_id"]),
                contract=_text(data["contract"]),
                deployment_block=_count(data["deployment_block"]),
            )
        except KeyError as exc:
            raise NetworkFileError(f"{where} has no {exc.args[0]!r} entry: {_REDO}") from exc
        except (TypeError, ValueError) as exc:
            raise NetworkFileError(f"{where} is malformed ({exc}): {_REDO}") from exc
        if not info.rpc_url.startswith(("http://", "https://")):
            raise NetworkFileError(f"{where}: rpc_url {info.rpc_url!r} is not an http(s) URL: {_REDO}")
        if not (info.contract.startswith("0x") and len(info.contract) == 42):
            raise NetworkFileError(f"{where}: contract {info.contract!r} is not an address: {_REDO}")
        return info


def is_network_file(data: Any) -> bool:
    """Whether parsed JSON claims to be a network.json (a devnet.json does not)."""
    return isinstance(data, dict) and data.get("format") == NETWORK_FORMAT


def _contract_in(path: Path) -> str:
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("contract", "?"))
    except (OSError, ValueError, AttributeError):
        return "?"


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return value
