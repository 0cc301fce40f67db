"""``manifest.json``: what training reads. No original identifier is in it.

One entry per ingested image: the patient's pseudonym and subject commitment, the
label, the shape of the stored pixel array and the image's path relative to the data
folder. ``key`` is an HMAC (keyed with the folder's private secret) of the source
SOPInstanceUID (or of the file bytes when there is none): it makes re-ingest
idempotent without revealing the original UID.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gossip.files import atomic_write
from node.errors import ManifestError

__all__ = ["MANIFEST_FILE", "Manifest", "ManifestEntry"]

MANIFEST_FILE = "manifest.json"
_FORMAT = "medgossip-manifest/1"


@dataclass(frozen=True)
class ManifestEntry:
    """One de-identified image."""

    pseudonym: str
    commitment: bytes  # keccak256(consent token), 32 bytes
    label: int
    shape: tuple[int, ...]  # the stored pixel array: (frames,) rows, cols (, samples)
    path: str  # relative to the data folder, POSIX separators
    key: str = ""  # HMAC of the source SOPInstanceUID / bytes (idempotent re-ingest)

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "pseudonym": self.pseudonym,
            "commitment": self.commitment.hex(),
            "label": self.label,
            "shape": list(self.shape),
            "path": self.path,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> ManifestEntry:
        commitment = bytes.fromhex(str(raw["commitment"]))
        if len(commitment) != 32:
            raise ValueError("commitment is not 32 bytes")
        shape = raw["shape"]
        if not isinstance(shape, list):
            raise TypeError("shape is not a list")
        label = raw["label"]
        if not isinstance(label, int) or isinstance(label, bool):
            raise TypeError("label is not an integer")
        return cls(
            pseudonym=str(raw["pseudonym"]),
            commitment=commitment,
            label=label,
            shape=tuple(int(s) for s in shape),
            path=str(raw["path"]),
            key=str(raw.get("key", "")),
        )


@dataclass(frozen=True)
class Manifest:
    """All images of a data folder, sorted by path."""

    entries: tuple[ManifestEntry, ...]

    @staticmethod
    def path_in(data_dir: str | os.PathLike[str]) -> Path:
        return Path(data_dir) / MANIFEST_FILE

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> Manifest:
        path = cls.path_in(data_dir)
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise ManifestError(f"no manifest.json in {data_dir} (run medgossip data ingest)") from exc
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"cannot read {path}: {type(exc).__name__}") from exc
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            raise ManifestError(f"{path}: not a medgossip manifest")
        try:
            entries = tuple(ManifestEntry.from_json(e) for e in raw["entries"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: malformed entry ({exc})") from exc
        return cls(entries)

    @classmethod
    def load_or_empty(cls, data_dir: str | os.PathLike[str]) -> Manifest:
        return cls.load(data_dir) if cls.path_in(data_dir).is_file() else cls(())

    def save(self, data_dir: str | os.PathLike[str]) -> Path:
        """Write atomically and durably (``gossip.files.atomic_write``)."""
        path = self.path_in(data_dir)
        doc = {
            "format": _FORMAT,
            "count": len(self.entries),
            "entries": [e.to_json() for e in sorted(self.entries, key=lambda e: e.path)],
        }
        atomic_write(path, json.dumps(doc, indent=1) + "\n", mode=0o666)  # the umask decides
        return path

    @property
    def subjects(self) -> frozenset[bytes]:
        """The distinct subject commitments."""
        return frozenset(e.commitment for e in self.entries)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(e.key for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)
