"""index.json: what a folder of proofs claims, written by `prove`, read by `verify`.

    {
      "format": "medgossip-audit-index/1",
      "contract": "0x…",  "chainId": 31337,
      "node": "0x…",                     the custodian's address (EIP-55)
      "subject": "0x…",                  the subject commitment
      "withdrawal": {"block": 812, "tx": "0x…", "by": "0x…", "byToken": true} | null,
      "sinceBlock": 812,                 exclusion is claimed from this block on
      "provedAtBlock": 901,              the chain head when the folder was made: it covers
                                         the node's contributions up to this block
      "contributions": [                 every contribution of the node, oldest first
        {"deltaHash": "0x…", "round": 7, "block": 815, "kind": "exclusion",
         "file": "round-7-exclusion.json", "violation": false},
        {"deltaHash": "0x…", "round": 3, "block": 640, "kind": null, "file": null,
         "violation": false}           (before sinceBlock, subject not used: no file)
      ]
    }

`verify` trusts none of it for its verdict: it re-reads the withdrawal and the node's
contributions from the chain. It uses the index only to know the node and subject, and
takes the earlier of `sinceBlock` and the withdrawal block (stricter, never looser).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossip.files import atomic_write
from node.audit.errors import AuditError
from node.audit.records import parse_hex32

__all__ = ["INDEX_FORMAT", "INDEX_NAME", "AuditIndex", "IndexEntry", "Withdrawal"]

INDEX_FORMAT = "medgossip-audit-index/1"
INDEX_NAME = "index.json"


def hex0x(value: bytes) -> str:
    return "0x" + value.hex()


@dataclass(frozen=True)
class Withdrawal:
    """The ConsentWithdrawn event of the subject, as the index states it."""

    block: int
    tx: str
    by: str
    by_token: bool


@dataclass(frozen=True)
class IndexEntry:
    """One contribution of the node; `kind`/`file` are None when no proof was written."""

    delta_hash: bytes
    round: int
    block: int
    kind: str | None
    file: str | None
    violation: bool = False


@dataclass(frozen=True)
class AuditIndex:
    contract: str
    chain_id: int
    node: str
    subject: bytes
    withdrawal: Withdrawal | None
    since_block: int
    contributions: tuple[IndexEntry, ...]
    proved_at_block: int | None = None

    def to_json(self) -> dict[str, Any]:
        w = self.withdrawal
        return {
            "format": INDEX_FORMAT,
            "contract": self.contract,
            "chainId": self.chain_id,
            "node": self.node,
            "subject": hex0x(self.subject),
            "withdrawal": None if w is None else {"block": w.block, "tx": w.tx, "by": w.by, "byToken": w.by_token},
            "sinceBlock": self.since_block,
            "provedAtBlock": self.proved_at_block,
            "contributions": [
                {"deltaHash": hex0x(c.delta_hash), "round": c.round, "block": c.block, "kind": c.kind,
                 "file": c.file, "violation": c.violation}
                for c in self.contributions
            ],
        }

    def write(self, folder: Path) -> Path:
        path = Path(folder) / INDEX_NAME
        atomic_write(path, json.dumps(self.to_json(), indent=1) + "\n", mode=0o644)
        return path

    @classmethod
    def load(cls, path: Path) -> AuditIndex:
        """Read and check an index.json; AuditError naming the file and the field."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AuditError(f"{path} is not a readable JSON index: {exc}") from exc
        try:
            return cls._from_json(raw, path)
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditError(f"{path} is not a valid {INDEX_FORMAT} index: bad or missing {exc}") from exc

    @classmethod
    def _from_json(cls, raw: Any, path: Path) -> AuditIndex:
        if not isinstance(raw, dict) or raw.get("format") != INDEX_FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise AuditError(f"{path} has format {found!r}, expected {INDEX_FORMAT!r}")
        w = raw["withdrawal"]
        withdrawal = None if w is None else Withdrawal(_int(w["block"]), str(w["tx"]), str(w["by"]), bool(w["byToken"]))
        entries = tuple(
            IndexEntry(
                delta_hash=parse_hex32(c["deltaHash"], f"{path}: deltaHash"), round=_int(c["round"]),
                block=_int(c["block"]), kind=c["kind"], file=c["file"], violation=bool(c.get("violation", False)),
            )
            for c in raw["contributions"]
        )
        return cls(
            contract=str(raw["contract"]), chain_id=_int(raw["chainId"]), node=_address(raw["node"]),
            subject=parse_hex32(raw["subject"], f"{path}: subject"), withdrawal=withdrawal,
            since_block=_int(raw["sinceBlock"]), contributions=entries,
            proved_at_block=None if raw.get("provedAtBlock") is None else _int(raw["provedAtBlock"]),
        )


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"non-negative integer (got {value!r})")
    return value


def _address(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise ValueError(f"node address (got {str(value)[:44]!r})")
    int(value[2:], 16)
    return value
