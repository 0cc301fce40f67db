"""devnet.json: where the devnet runs and the keys of its admin and dev nodes.

The file holds private keys and is written with mode 0600.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from devnet.errors import DevnetFileError
from gossip.files import atomic_write

__all__ = ["DEVNET_FILE", "DevNode", "DevnetInfo"]

DEVNET_FILE = "devnet.json"
_REDO = "it is written by `medgossip devnet start`; move it away and start the devnet again"


@dataclass(frozen=True)
class DevNode:
    """A dev node identity: the secp256k1 key is both its Ethereum account and its
    libp2p identity; `peer_id` is the raw peer ID multihash registered on chain."""

    name: str
    address: str
    private_key: str
    peer_id: bytes

    @property
    def secret(self) -> bytes:
        """The 32-byte secret (what gossip.identity takes)."""
        return bytes.fromhex(self.private_key.removeprefix("0x"))


@dataclass(frozen=True)
class DevnetInfo:
    """The contents of devnet.json."""

    rpc_url: str
    chain_id: int
    contract: str
    admin_key: str
    admin: str
    relayer_key: str
    nodes: tuple[DevNode, ...]
    anvil_pid: int | None
    state_file: str
    port: int
    log_file: str
    deployed_block: int = 0
    host: str = "127.0.0.1"
    """the address anvil listens on (rpc_url names it)."""
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    def node(self, name: str) -> DevNode:
        """The dev node called `name` (KeyError lists the known names)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no dev node {name!r}; known: {', '.join(n.name for n in self.nodes)}")

    def with_pid(self, pid: int | None) -> DevnetInfo:
        return replace(self, anvil_pid=pid)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("extra")
        data["nodes"] = [
            {**asdict(node), "peer_id": "0x" + node.peer_id.hex()} for node in self.nodes
        ]
        return json.dumps(data, indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically with mode 0600 (the file holds private keys)."""
        target = Path(path)
        try:
            atomic_write(target, self.to_json(), mode=0o600)
        except OSError as exc:
            raise DevnetFileError(f"cannot write {target}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DevnetInfo:
        """Read a devnet.json (a directory means DIR/devnet.json)."""
        target = Path(path)
        if target.is_dir():
            target = target / DEVNET_FILE
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DevnetFileError(
                f"{target} not found: start a devnet with `medgossip devnet start`"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DevnetFileError(
                f"{target} is not valid JSON ({exc.msg}, line {exc.lineno}): {_REDO}"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise DevnetFileError(f"cannot read {target} ({reason}): {_REDO}") from exc
        if not isinstance(data, dict):
            raise DevnetFileError(f"{target} does not hold a JSON object: {_REDO}")
        try:
            nodes = tuple(
                DevNode(
                    name=str(n["name"]),
                    address=str(n["address"]),
                    private_key=str(n["private_key"]),
                    peer_id=bytes.fromhex(str(n["peer_id"]).removeprefix("0x")),
                )
                for n in data["nodes"]
            )
            known = {f for f in cls.__dataclass_fields__ if f not in {"nodes", "extra"}}
            return cls(
                rpc_url=str(data["rpc_url"]),
                chain_id=int(data["chain_id"]),
                contract=str(data["contract"]),
                admin_key=str(data["admin_key"]),
                admin=str(data["admin"]),
                relayer_key=str(data["relayer_key"]),
                nodes=nodes,
                anvil_pid=None if data.get("anvil_pid") is None else int(data["anvil_pid"]),
                state_file=str(data["state_file"]),
                port=int(data["port"]),
                log_file=str(data["log_file"]),
                deployed_block=int(data.get("deployed_block", 0)),
                host=str(data.get("host", "127.0.0.1")),
                extra={k: v for k, v in data.items() if k not in known and k != "nodes"},
            )
        except KeyError as exc:
            raise DevnetFileError(f"{target} has no {exc.args[0]!r} entry: {_REDO}") from exc
        except (TypeError, ValueError) as exc:
            raise DevnetFileError(f"{target} is malformed ({exc}): {_REDO}") from exc
