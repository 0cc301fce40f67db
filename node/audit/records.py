"""The custodian's side: the audit records its peer kept for every trained round.

`audit/round-<r>.json` in a checkpoint folder holds ``{"delta_hash", "data_root",
"subjects"}`` (hex strings) for round r. A record's delta hash is the one the peer
finally recorded: when another node front-ran a hash, the recorder re-encoded the
payload and updated the record (`node.peer.recorder`), so the hash, not the round, is
the key. node.json's journal says which hashes the peer saw mined as its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from node.audit.errors import AuditError
from node.errors import PeerError

__all__ = ["AuditRecord", "parse_hex32", "read_audit_records", "recorded_hashes"]

_ROUND_FILE = re.compile(r"^round-(\d+)\.json$")
_HEX64 = re.compile(r"^0x[0-9a-f]{64}$")


@dataclass(frozen=True)
class AuditRecord:
    """The subjects behind one of our contributions, as the peer wrote them."""

    round: int
    delta_hash: bytes
    data_root: bytes
    subjects: tuple[bytes, ...]
    path: Path


def parse_hex32(value: object, what: str) -> bytes:
    """0x + 64 hex characters (either case) -> 32 bytes; AuditError naming `what`."""
    if not isinstance(value, str) or not _HEX64.match(value.lower()):
        raise AuditError(f"{what} must be 0x and 64 hex characters, got {str(value)[:24]!r}")
    return bytes.fromhex(value[2:])


def read_audit_records(checkpoint_dir: Path) -> dict[bytes, AuditRecord]:
    """Every audit record of the folder, by delta hash."""
    folder = Path(checkpoint_dir) / "audit"
    if not folder.is_dir():
        raise AuditError(
            f"{folder} does not exist: --checkpoint-dir must be the peer's checkpoint folder "
            "(the one holding node.json and audit/)"
        )
    records: dict[bytes, AuditRecord] = {}
    for path in sorted(folder.iterdir()):
        match = _ROUND_FILE.match(path.name)
        if match is None:
            continue
        record = _read_record(path, int(match[1]))
        records[record.delta_hash] = record
    return records


def _read_record(path: Path, round_: int) -> AuditRecord:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditError(f"audit record {path} is unreadable: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("subjects"), list):
        raise AuditError(f"audit record {path} is not an object with delta_hash, data_root, subjects")
    return AuditRecord(
        round=round_,
        delta_hash=parse_hex32(raw.get("delta_hash"), f"{path}: delta_hash"),
        data_root=parse_hex32(raw.get("data_root"), f"{path}: data_root"),
        subjects=tuple(parse_hex32(s, f"{path}: subject") for s in raw["subjects"]),
        path=path,
    )


def recorded_hashes(checkpoint_dir: Path) -> list[bytes]:
    """Delta hashes node.json's journal saw mined as ours, newest first (none if the
    folder has no node.json). These are the surest way to learn the node's address."""
    from node.checkpoint import CheckpointStore  # imports torch: only `prove` needs it

    try:
        state = CheckpointStore(Path(checkpoint_dir)).load_state()
    except PeerError as exc:
        raise AuditError(str(exc)) from exc
    found: list[bytes] = []
    for entry in reversed(state.journal):
        if entry.status == "recorded" and _HEX64.match(entry.delta_hash.lower()):
            found.append(bytes.fromhex(entry.delta_hash[2:]))
    return found
