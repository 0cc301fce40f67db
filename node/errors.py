"""Exceptions raised by the ``node`` package.

Third-party exceptions (pydicom, safetensors, torch, csv ...) are translated once, at
the boundary where they occur, with ``raise ... from exc``; callers only ever see these::

    NodeError                        base of everything the node package raises
    ├── DataError                    data ingestion and loading (node.data)
    │   ├── SourceNotFound           the ingest source folder does not exist
    │   ├── LabelsError              the labels CSV is missing, unreadable or malformed
    │   ├── ManifestError            manifest.json missing, unreadable or inconsistent
    │   ├── LinkageError             the private linkage table is unreadable / unsafe
    │   └── InvalidToken (ValueError) a consent token string that is not 32 bytes of hex
    ├── CodecError                   a delta payload cannot be encoded or is rejected (node.codec)
    │   ├── EncodingError            the states to encode are inconsistent or not finite
    │   ├── PayloadTooLarge          payload over the size bound (checked before parsing)
    │   ├── MalformedPayload         truncated, oversized header, not canonical safetensors
    │   │                            (a pickle / torch.save file lands here)
    │   ├── UnsupportedFormat        unknown format version or codec, invalid codec params,
    │   │                            or a model id / base hash other than the expected one
    │   ├── SchemaMismatch           tensor names, shapes or dtypes differ from the reference
    │   └── InvalidValues            NaN/inf, a bad scale, int8 -128, top-k bitmap padding or popcount
    ├── TrainingError                local training cannot proceed (node.models, node.trainer)
    │   ├── NoTrainingData           no consented image left to train on (all withdrawn)
    │   └── PrivacyConfigError       invalid DP settings or privacy-accountant state
    ├── ConfigError                  an invalid peer configuration (node.config)
    └── PeerError                    the peer cannot start or go on (node.peer)

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


class InvalidToken(DataError, ValueError):
    """A consent token string is not 32 bytes of hex (optionally ``0x``-prefixed)."""


# --- learning (node.codec, node.models, node.trainer, node.privacy) ---------------


class CodecError(NodeError):
    """A model delta cannot be encoded, or a received payload is rejected."""


class EncodingError(CodecError):
    """The states given to the encoder are inconsistent (keys, shapes) or not finite."""


class PayloadTooLarge(CodecError):
    """The payload is larger than the accepted bound; it was not parsed."""


class MalformedPayload(CodecError):
    """Not a canonical safetensors payload (truncated, bad header, pickle, trailing bytes)."""


class UnsupportedFormat(CodecError):
    """Unknown format version/codec, invalid codec parameters, or unexpected model/base."""


class SchemaMismatch(CodecError):
    """Tensor names, shapes or dtypes do not match what the reference model implies."""


class InvalidValues(CodecError):
    """NaN/inf values, negative scales, or top-k indices out of bounds / not increasing."""


class TrainingError(NodeError):
    """Local training cannot proceed (bad model name, bad trainer arguments...)."""


class NoTrainingData(TrainingError):
    """No consented training image is left (everything withdrawn, or an empty set)."""


class PrivacyConfigError(TrainingError):
    """DP-SGD settings or a saved privacy-accountant state are invalid."""


# --- the peer (node.config, node.peer) --------------------------------------------


class ConfigError(NodeError):
    """A peer's configuration is invalid: the message names the field and what to do."""


class PeerError(NodeError):
    """The peer cannot start or go on (not registered, wrong genesis, no data...)."""
