"""Exceptions raised by the ``node`` package, and the map of every error of the project.

Third-party exceptions (pydicom, safetensors, torch, csv ...) are translated once, at
the boundary where they occur, with ``raise ... from exc``; callers only ever see the
classes below.  Most live in each package's ``errors.py``; the few defined next to the
code that raises them name their module.  Every package's tree hangs under one root, ``MedgossipError`` (defined in
``gossip.errors``, the lowest package), so the command line catches that one class and
prints its message as one line; anything else is a bug and keeps its traceback.  Class
names are unique across the project::

    MedgossipError                       gossip.errors: root of every error raised on purpose
    ├── NodeError                        node.errors: base of everything the node package raises
    │   ├── DataError                    data ingestion and loading (node.data)
    │   │   ├── SourceNotFound           the ingest source folder does not exist
    │   │   ├── LabelsError              the labels CSV is missing, unreadable or malformed
    │   │   ├── ManifestError            manifest.json missing, unreadable or inconsistent
    │   │   ├── LinkageError             the private linkage table is unreadable / unsafe
    │   │   └── InvalidToken (ValueError) a consent token string that is not 32 bytes of hex
    │   ├── CodecError                   a delta payload cannot be encoded or is rejected (node.codec)
    │   │   ├── EncodingError            the states to encode are inconsistent or not finite, or
    │   │   │                            the author / round / nonce to bind is missing or invalid
    │   │   ├── PayloadTooLarge          payload over the size bound (checked before parsing)
    │   │   ├── MalformedPayload         truncated, oversized header, not canonical safetensors
    │   │   │                            (a pickle / torch.save file lands here)
    │   │   ├── UnsupportedFormat        unknown or retired format version, unknown codec, invalid
    │   │   │                            codec params or header values
    │   │   ├── HeaderMismatch           a valid header whose model id, base hash, author or round
    │   │   │                            is not the one expected (the message names the field)
    │   │   ├── SchemaMismatch           tensor names, shapes or dtypes differ from the reference
    │   │   └── InvalidValues            NaN/inf, a bad scale, int8 -128, top-k bitmap padding or popcount
    │   ├── TrainingError                local training cannot proceed (node.models, node.trainer)
    │   │   ├── NoTrainingData           no consented image left to train on (all withdrawn)
    │   │   └── PrivacyConfigError       invalid DP settings or privacy-accountant state
    │   ├── AggregationError (ValueError) node.aggregate: updates that cannot be merged
    │   │   ├── NoUpdates                an aggregation over no update at all
    │   │   ├── IncompatibleUpdates      updates disagree on tensor names, shapes or dtypes
    │   │   └── InvalidAggregationParameter  a weight, beta, f or m out of range
    │   │       └── UnknownStrategy      node.merge: a merge rule name that does not exist
    │   ├── MerkleError (ValueError)     node.merkle: the data-commitment tree (format 1)
    │   │   └── InvalidLeaf              a leaf not 32 bytes, or a leaf list not sorted / distinct
    │   ├── ProofError                   node.proofs: inclusion / exclusion proofs
    │   │   ├── ProofFormatError         not a format-1 proof file (message names the file / field)
    │   │   └── ProofInvalid             a well-formed proof that does not hold (says which condition)
    │   ├── AuditError                   node.audit: an audit prove / verify that cannot run at all
    │   ├── PrivacyAuditError            node.privacy_audit: a membership-inference audit that cannot run
    │   ├── ConfigError                  an invalid peer configuration (node.config)
    │   └── PeerError                    the peer cannot start or go on (node.peer)
    ├── GossipError                      gossip.errors: the P2P layer
    │   ├── InvalidIdentity              a secret, key file or peer ID that cannot be used
    │   ├── GossipConfigError            a GossipConfig that cannot work (bad multiaddr, limits)
    │   ├── UnsupportedLibp2p            the installed py-libp2p is not the one gossip._tuning patches
    │   ├── NetworkNotRunning            the GossipNetwork is not (or no longer) started
    │   ├── AnnouncementError            an announcement that cannot be encoded/decoded
    │   │   └── AnnouncementTooLarge     over GossipConfig.max_announcement bytes
    │   ├── PayloadOverLimit             provide()/serve of more than GossipConfig.max_payload
    │   ├── PayloadHashMismatch          provide() of a payload under a hash it does not have
    │   ├── TransferError                one transfer from one peer went wrong
    │   │   ├── PeerUnreachable          could not dial / open the stream
    │   │   ├── PeerRefused              the peer answered "not found" / "refused" / "busy"
    │   │   ├── TransferTimeout          the peer was too slow
    │   │   ├── TruncatedTransfer        the stream ended before the announced length
    │   │   └── HashMismatch             the bytes do not hash to the requested keccak256
    │   └── FetchFailed                  every holder failed; ``.reasons`` maps peer -> reason
    ├── LedgerError                      contracts.errors: the chain side
    │   ├── ChainUnavailable             RPC unreachable, refused, timed out, chain stopped
    │   ├── LogRangeRefused              eth_getLogs refused even for one block (wider: narrowed)
    │   ├── NetworkFileError             a network.json missing, unreadable or malformed
    │   ├── ContractNotFound             no AuditLedger code at the configured address
    │   ├── InvalidInput (ValueError)    a malformed argument, caught before sending
    │   ├── TransactionFailed            rejected or reverted without a project-specific reason
    │   │   └── InsufficientFunds        the sending account cannot pay for gas
    │   └── ContractRejected             the contract reverted with one of its custom errors
    │       ├── NotAdmin                 AuditLedgerNotAdmin(caller)
    │       ├── NotRegistered            AuditLedgerNotRegistered(node)
    │       ├── NodeRevoked              AuditLedgerNodeRevoked(node)
    │       ├── AlreadyRegistered        AuditLedgerAlreadyRegistered(node)
    │       ├── DuplicateContribution    AuditLedgerDuplicateContribution(deltaHash)
    │       ├── AlreadyWithdrawn         AuditLedgerAlreadyWithdrawn(subjectCommitment)
    │       ├── GenesisAlreadySet        AuditLedgerGenesisAlreadySet(modelHash)
    │       ├── StaleRound               AuditLedgerStaleRound(node, round, lastRound)
    │       ├── SampleCountOverCap       AuditLedgerSampleCountOverCap(node, sampleCount, sampleCap)
    │       ├── PrivacyBudgetExceeded    AuditLedgerPrivacyBudgetExceeded(node, spentMicros,
    │       │                            epsilonMicros, budgetMicros)
    │       ├── WithdrawalNotSeen        AuditLedgerWithdrawalNotSeen(withdrawalsSeenAt, lastWithdrawalBlock)
    │       └── RejectedArgument         AuditLedgerZeroHash / ZeroAddress / EmptyPeerId / ZeroSampleCap
    └── DevnetError                      devnet.errors: the local anvil chain
        ├── AnvilNotFound                the anvil binary is not installed (run `make install`)
        ├── HardhatNotFound              the hardhat package or node is not installed (run `make install`)
        ├── PortInUse                    the RPC port on the chosen address is taken
        ├── DevnetStartFailed            anvil exited or never answered; the message quotes its log
        ├── DevnetNotRunning             no devnet.json, or its anvil is not running
        └── DevnetFileError              devnet.json is missing, unreadable or malformed

tests/node/test_error_tree.py checks that this drawing and the classes agree.

Per-file problems during ingest (unreadable, non-image, unsupported transfer syntax,
no label) are not exceptions: they are returned as data in the ingest report.
"""

from __future__ import annotations

from gossip.errors import MedgossipError

__all__ = [
    "CodecError",
    "ConfigError",
    "DataError",
    "EncodingError",
    "HeaderMismatch",
    "InvalidToken",
    "InvalidValues",
    "LabelsError",
    "LinkageError",
    "MalformedPayload",
    "ManifestError",
    "MedgossipError",
    "NoTrainingData",
    "NodeError",
    "PayloadTooLarge",
    "PeerError",
    "PrivacyConfigError",
    "SchemaMismatch",
    "SourceNotFound",
    "TrainingError",
    "UnsupportedFormat",
]


class NodeError(MedgossipError):
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
    """The states to encode are inconsistent or not finite, or the author/round is invalid."""


class PayloadTooLarge(CodecError):
    """The payload is larger than the accepted bound; it was not parsed."""


class MalformedPayload(CodecError):
    """Not a canonical safetensors payload (truncated, bad header, pickle, trailing bytes)."""


class UnsupportedFormat(CodecError):
    """Unknown or retired format version, unknown codec, invalid codec params or header values."""


class HeaderMismatch(CodecError):
    """The header names another model, base, author or round than the expected one."""


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
