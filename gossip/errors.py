"""Exceptions raised by the gossip layer, and ``MedgossipError``, the project's root.

``MedgossipError`` lives here because ``gossip`` is the lowest package (it imports none
of the others), so ``node``, ``contracts`` and ``devnet`` can all derive from it; the
command line catches it, once, to print one line instead of a traceback.  The whole
project tree is drawn in ``node/errors.py``.

Every third-party exception (libp2p, trio, multiaddr, protobuf, OS errors on the key
file) is translated once, where it crosses into this package, with
``raise ... from exc``::

    MedgossipError
    └── GossipError
         ├── InvalidIdentity          a secret, key file or peer ID that cannot be used
         ├── GossipConfigError        a GossipConfig that cannot work (bad multiaddr, limits)
         ├── UnsupportedLibp2p        the installed py-libp2p is not the one _tuning patches
         ├── NetworkNotRunning        the GossipNetwork is not (or no longer) started
         ├── AnnouncementError        an announcement that cannot be encoded/decoded
         │    └── AnnouncementTooLarge   over GossipConfig.max_announcement bytes
         ├── PayloadOverLimit         provide()/serve of more than GossipConfig.max_payload
         ├── PayloadHashMismatch      provide() of a payload under a hash it does not have
         ├── TransferError            one transfer from one peer went wrong
         │    ├── PeerUnreachable        could not dial / open the stream
         │    ├── PeerRefused            the peer answered "not found" / "refused" / "busy"
         │    ├── TransferTimeout        the peer was too slow
         │    ├── TruncatedTransfer      the stream ended before the announced length
         │    └── HashMismatch           the bytes do not hash to the requested keccak256
         └── FetchFailed              every holder failed; ``.reasons`` maps peer -> reason

``FetchFailed`` carries the per-peer ``TransferError``s as data (``reasons``), so a caller
can log them without catching each kind separately.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AnnouncementError",
    "AnnouncementTooLarge",
    "FetchFailed",
    "GossipConfigError",
    "GossipError",
    "HashMismatch",
    "InvalidIdentity",
    "MedgossipError",
    "NetworkNotRunning",
    "PayloadHashMismatch",
    "PayloadOverLimit",
    "PeerRefused",
    "PeerUnreachable",
    "TransferError",
    "TransferTimeout",
    "TruncatedTransfer",
    "UnsupportedLibp2p",
]


class MedgossipError(Exception):
    """Root of every error medgossip raises on purpose (node, gossip, contracts, devnet).

    Its message is meant for the person running the command: what went wrong and,
    where there is one, what to do about it.  Anything else reaching the command line
    is a bug and keeps its traceback.
    """


class GossipError(MedgossipError):
    """Base class of every error raised by ``gossip``."""


class InvalidIdentity(GossipError):
    """A secret, key file or peer ID that is not a usable secp256k1 identity."""


class GossipConfigError(GossipError):
    """A GossipConfig value that cannot work."""


class UnsupportedLibp2p(GossipError):
    """The installed py-libp2p no longer has the internals ``gossip._tuning`` patches."""


class NetworkNotRunning(GossipError):
    """The GossipNetwork is used outside its ``async with`` block."""


class AnnouncementError(GossipError):
    """An announcement that cannot be encoded or decoded."""


class AnnouncementTooLarge(AnnouncementError):
    """The encoded announcement is larger than the configured limit."""


class PayloadOverLimit(GossipError):
    """A payload larger than GossipConfig.max_payload."""


class PayloadHashMismatch(GossipError):
    """``provide()`` was given a payload that does not hash to the delta hash given."""


class TransferError(GossipError):
    """One transfer attempt from one peer failed."""


class PeerUnreachable(TransferError):
    """The peer could not be dialled or the stream could not be opened."""


class PeerRefused(TransferError):
    """The peer answered with a refusal (not found, not a member, busy)."""


class TransferTimeout(TransferError):
    """The transfer did not finish within the per-peer timeout."""


class TruncatedTransfer(TransferError):
    """The stream ended before the length announced in the response header."""


class HashMismatch(TransferError):
    """The received bytes do not hash to the requested delta hash (a lying peer)."""


class FetchFailed(GossipError):
    """No holder delivered the payload; ``reasons`` maps each tried peer to why."""

    def __init__(self, delta_hash: bytes, reasons: Mapping[str, TransferError]) -> None:
        self.delta_hash = delta_hash
        self.reasons: dict[str, TransferError] = dict(reasons)
        if self.reasons:
            detail = "; ".join(
                f"{peer}: {type(err).__name__}: {err}" for peer, err in self.reasons.items()
            )
        else:
            detail = "no holder to ask"
        super().__init__(f"fetch of {delta_hash.hex()} failed ({detail})")
