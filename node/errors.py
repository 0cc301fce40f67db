"""Exceptions raised by the ``node`` package.

Third-party exceptions (pydicom, safetensors, torch, csv ...) are translated once, at
the boundary where they occur, with ``raise ... from exc``; callers only ever see these::

    NodeError                        base of everything the node package raises
    ├── DataError                    data ingestion and loading (node.data)
    │   ├── SourceNotFound           the ingest source folder does not exist
    │   ├── LabelsError              the labels CSV is missing, unreadable or malformed
    │   ├── ManifestError            manifest.json missing, unreadable or inconsistent
    │   ├── LinkageError             the private linkage table is unreadable / unsafe
    │   ├── NothingIngested          an ingest run produced no usable image at all
    │   └── InvalidToken (ValueError) a consent token string that is not 32 bytes of hex
    ├── CodecError                   (learning engineer: delta encoding/decoding)
    └── TrainingError                (learning engineer: local training)

Per-file problems during ingest (unreadable, non-image, unsupported transfer syntax,
no label) are not exceptions: they are returned as data in the ingest report.
"""

from __future__ import annotations


class NodeError(Exception):
    """Base class of every error raised by the node package."""


# --- data (node.data) -------------------------------------------------------------


class DataError(NodeError):
    """Something went wrong reading, de-identifying or loading imaging data."""


class SourceNotFound(DataError):
    """The ingest source folder (or file) does not exist."""


class LabelsError(DataError):
    """The labels CSV is missing, unreadable or malformed."""


class ManifestError(DataError):
    """``manifest.json`` is missing, unreadable or inconsistent with the data folder."""


class LinkageError(DataError):
    """The private linkage table cannot be read, or has unsafe permissions."""


class NothingIngested(DataError):
    """An ingest run could not ingest a single image (every file was reported)."""


class InvalidToken(DataError, ValueError):
    """A consent token string is not 32 bytes of hex (optionally ``0x``-prefixed)."""
