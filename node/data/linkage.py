"""The private linkage table: original patient ID -> pseudonym -> consent token.

It lives in ``DATA_DIR/linkage.json`` with mode 0600 and is the only file of a data
folder that holds original identifiers (and the folder's de-identification secret).
It is never logged and never leaves the node: the rows' ``repr`` hides the token and
the original ID so that an accidental log line cannot leak them.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from gossip.files import atomic_write
from node.data.consent import commitment_of, format_token, new_token, parse_token
from node.errors import InvalidToken, LinkageError

__all__ = ["LINKAGE_FILE", "LinkageRow", "LinkageTable"]

LINKAGE_FILE = "linkage.json"
_FORMAT = "medgossip-linkage/1"


@dataclass(frozen=True)
class LinkageRow:
    """One patient. ``commitment`` = keccak256(``token``); ``pseudonym`` is in the files."""

    pseudonym: str
    commitment: bytes
    token: bytes = field(repr=False)
    original_patient_id: str = field(repr=False)
    patient_key: str = field(repr=False, default="")

    @property
    def token_hex(self) -> str:
        """The printable token handed to the patient."""
        return format_token(self.token)


def _new_pseudonym(taken: set[str]) -> str:
    while True:
        candidate = "MG-" + secrets.token_hex(5).upper()
        if candidate not in taken:
            return candidate


class LinkageTable:
    """Pseudonyms and consent tokens of one data folder (see the module docstring)."""

    def __init__(self, secret: bytes, rows: tuple[LinkageRow, ...] = ()) -> None:
        if len(secret) != 32:
            raise LinkageError("the de-identification secret is 32 bytes")
        self._secret = secret
        self._rows: dict[str, LinkageRow] = {}
        for row in rows:
            self._rows[row.patient_key or row.original_patient_id] = row

    # --- construction / persistence -----------------------------------------------

    @classmethod
    def create(cls) -> LinkageTable:
        """An empty table with a fresh random secret."""
        return cls(secrets.token_bytes(32))

    @classmethod
    def path_in(cls, data_dir: str | os.PathLike[str]) -> Path:
        return Path(data_dir) / LINKAGE_FILE

    @classmethod
    def exists(cls, data_dir: str | os.PathLike[str]) -> bool:
        return cls.path_in(data_dir).is_file()

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> LinkageTable:
        """Read ``DATA_DIR/linkage.json``; refuse it if group/others can access it."""
        path = cls.path_in(data_dir)
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise LinkageError(
                    f"{path} is accessible by group/others (mode {stat.S_IMODE(mode):o}); "
                    "run chmod 600 on it"
                )
            raw = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise LinkageError(f"no linkage table in {data_dir} (run medgossip data ingest)") from exc
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LinkageError(f"cannot read the linkage table {path}: {type(exc).__name__}") from exc
        try:
            if raw.get("format") != _FORMAT:
                raise LinkageError(f"{path}: unknown format {raw.get('format')!r}")
            rows = tuple(
                LinkageRow(
                    pseudonym=str(r["pseudonym"]),
                    commitment=bytes.fromhex(r["commitment"]),
                    token=parse_token(r["token"]),
                    original_patient_id=str(r["original_patient_id"]),
                    patient_key=str(r["patient_key"]),
                )
                for r in raw["patients"]
            )
            table = cls(bytes.fromhex(raw["secret"]), rows)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LinkageError(f"{path} is malformed ({type(exc).__name__})") from exc
        for row in table.rows:
            if commitment_of(row.token) != row.commitment:
                raise LinkageError(f"{path}: a commitment does not match its token")
        return table

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str]) -> LinkageTable:
        return cls.load(data_dir) if cls.exists(data_dir) else cls.create()

    def save(self, data_dir: str | os.PathLike[str]) -> Path:
        """Write the table (mode 0600, atomic replace)."""
        path = self.path_in(data_dir)
        doc = {
            "format": _FORMAT,
            "warning": "PRIVATE: original patient identifiers and consent tokens. "
                       "Never share, never log.",
            "secret": self._secret.hex(),
            "patients": [
                {
                    "patient_key": r.patient_key,
                    "original_patient_id": r.original_patient_id,
                    "pseudonym": r.pseudonym,
                    "token": r.token_hex,
                    "commitment": r.commitment.hex(),
                }
                for r in sorted(self._rows.values(), key=lambda r: r.pseudonym)
            ],
        }
        atomic_write(path, json.dumps(doc, indent=1), mode=0o600)  # secret: owner only
        return path

    # --- queries ------------------------------------------------------------------

    @property
    def secret(self) -> bytes:
        """The data folder's de-identification secret (seeds UID remapping)."""
        return self._secret

    @property
    def rows(self) -> tuple[LinkageRow, ...]:
        return tuple(sorted(self._rows.values(), key=lambda r: r.pseudonym))

    def __len__(self) -> int:
        return len(self._rows)

    def get_or_add(self, patient_key: str, original_patient_id: str) -> LinkageRow:
        """The row of a patient, creating pseudonym and token on first sight."""
        row = self._rows.get(patient_key)
        if row is None:
            token = new_token()
            row = LinkageRow(
                pseudonym=_new_pseudonym({r.pseudonym for r in self._rows.values()}),
                commitment=commitment_of(token),
                token=token,
                original_patient_id=original_patient_id,
                patient_key=patient_key,
            )
            self._rows[patient_key] = row
        return row

    def by_key(self, patient_key: str) -> LinkageRow | None:
        return self._rows.get(patient_key)

    def remove(self, patient_key: str) -> None:
        """Forget a patient (used to undo a row whose only image failed to ingest)."""
        self._rows.pop(patient_key, None)

    def by_pseudonym(self, pseudonym: str) -> LinkageRow | None:
        return next((r for r in self._rows.values() if r.pseudonym == pseudonym), None)

    def by_patient_id(self, original_patient_id: str) -> LinkageRow | None:
        return next(
            (r for r in self._rows.values() if r.original_patient_id == original_patient_id), None
        )

    def by_commitment(self, commitment: bytes) -> LinkageRow | None:
        return next((r for r in self._rows.values() if r.commitment == commitment), None)

    def by_token(self, token: bytes | str) -> LinkageRow | None:
        try:
            raw = parse_token(token) if isinstance(token, str) else token
        except InvalidToken:
            return None
        return next((r for r in self._rows.values() if r.token == raw), None)
