"""A peer's identity: one secp256k1 secret that is both its libp2p key and its Ethereum account.

The libp2p peer ID of a secp256k1 key is an *identity* multihash of the protobuf-encoded
public key (37 bytes, under libp2p's 42-byte inlining limit), so the public key -- and
therefore the Ethereum address -- can be recovered from the peer ID alone.  That is what
lets the ledger check "the peer that signed this announcement is registered node X".

Pure functions over coincurve, base58, eth-hash (the project's one keccak) and eth-utils
(the EIP-55 checksum): importing this module does not import libp2p, and nothing here
needs a running host.  Signatures are *not* interchangeable between the two worlds
(libp2p signs sha256 + DER, Ethereum keccak + 65-byte recoverable); only the key is shared.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import NewType

import base58
import coincurve
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from gossip.errors import InvalidIdentity
from gossip.files import atomic_write

__all__ = [
    "PeerId",
    "eth_address_from_peer_id",
    "generate_secret",
    "load_or_create_secret",
    "peer_id_bytes_from_secret",
    "peer_id_from_bytes",
    "peer_id_from_secret",
    "peer_id_to_bytes",
    "public_key_from_peer_id",
]

PeerId = NewType("PeerId", str)
"""A libp2p peer ID in its usual base58 text form (``16U...`` for secp256k1 keys)."""

SECRET_LENGTH = 32
# libp2p crypto.proto: message PublicKey { required KeyType Type = 1; required bytes Data = 2; }
# with KeyType.Secp256k1 = 2 and Data = the 33-byte compressed point.
_PROTO_SECP256K1_PREFIX = bytes([0x08, 0x02, 0x12, 33])
_IDENTITY_MULTIHASH = 0x00
_SERIALIZED_KEY_LENGTH = len(_PROTO_SECP256K1_PREFIX) + 33  # 37
_PEER_ID_PREFIX = bytes([_IDENTITY_MULTIHASH, _SERIALIZED_KEY_LENGTH])
_PEER_ID_LENGTH = len(_PEER_ID_PREFIX) + _SERIALIZED_KEY_LENGTH  # 39


def generate_secret() -> bytes:
    """Return a fresh, valid 32-byte secp256k1 secret."""
    while True:
        candidate = secrets.token_bytes(SECRET_LENGTH)
        try:
            coincurve.PrivateKey(candidate)
        except ValueError:  # zero or >= group order: astronomically rare
            continue
        return candidate


def _private_key(secret: bytes) -> coincurve.PrivateKey:
    if not isinstance(secret, bytes) or len(secret) != SECRET_LENGTH:
        raise InvalidIdentity(f"a secret must be {SECRET_LENGTH} bytes")
    try:
        return coincurve.PrivateKey(secret)
    except ValueError as exc:
        raise InvalidIdentity("secret is not a valid secp256k1 scalar") from exc


def load_or_create_secret(path: str | os.PathLike[str]) -> bytes:
    """Load the hex secret stored at ``path``; create it (mode 0600) if the file is absent.

    Raises InvalidIdentity, naming the file and what to do, if the file exists but does
    not hold a valid secret, cannot be read, or cannot be created.
    """
    target = Path(path)
    if target.exists():
        return _read_secret(target)
    return _create_secret(target)


_KEY_FILE_HOLDS = f"it must hold {2 * SECRET_LENGTH} hex characters, a secp256k1 secret"
_WHAT_TO_DO = "give the right file, or a path that does not exist yet to create a new key"


def _read_secret(target: Path) -> bytes:
    try:
        text = target.read_text(encoding="ascii").strip()
    except UnicodeDecodeError as exc:
        raise InvalidIdentity(
            f"{target} is not a key file: {_KEY_FILE_HOLDS}; {_WHAT_TO_DO}"
        ) from exc
    except OSError as exc:
        raise InvalidIdentity(
            f"cannot read key file {target} ({exc.strerror or exc}); give a readable file"
        ) from exc
    try:
        return _private_key(bytes.fromhex(text.removeprefix("0x"))).secret
    except (ValueError, InvalidIdentity) as exc:
        raise InvalidIdentity(
            f"{target} does not hold a valid key: {_KEY_FILE_HOLDS}; {_WHAT_TO_DO}"
        ) from exc


def _create_secret(target: Path) -> bytes:
    secret = generate_secret()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, secret.hex() + "\n", mode=0o600, exclusive=True)
    except OSError as exc:
        raise InvalidIdentity(
            f"cannot create key file {target} ({exc.strerror or exc}); "
            "give a key file path in a folder that exists or can be created"
        ) from exc
    return secret


def peer_id_bytes_from_secret(secret: bytes) -> bytes:
    """The raw peer ID (identity multihash, 39 bytes) -- the form recorded on chain."""
    public = _private_key(secret).public_key.format(compressed=True)
    return _PEER_ID_PREFIX + _PROTO_SECP256K1_PREFIX + public


def peer_id_from_secret(secret: bytes) -> PeerId:
    """The base58 peer ID of the host using ``secret`` as its key."""
    return peer_id_from_bytes(peer_id_bytes_from_secret(secret))


def peer_id_to_bytes(peer_id: str) -> bytes:
    """Decode a base58 peer ID to its raw multihash bytes."""
    try:
        raw = base58.b58decode(peer_id)
    except ValueError as exc:
        raise InvalidIdentity(f"not a base58 peer ID: {peer_id!r}") from exc
    if not raw:
        raise InvalidIdentity("empty peer ID")
    return raw


def peer_id_from_bytes(raw: bytes) -> PeerId:
    """Encode raw peer ID bytes in base58."""
    if not raw:
        raise InvalidIdentity("empty peer ID")
    return PeerId(base58.b58encode(raw).decode("ascii"))


def public_key_from_peer_id(peer_id: str | bytes) -> bytes:
    """The 33-byte compressed secp256k1 public key embedded in a secp256k1 peer ID.

    Raises InvalidIdentity for peer IDs of other key types (ed25519, RSA, hashed IDs).
    """
    raw = peer_id_to_bytes(peer_id) if isinstance(peer_id, str) else bytes(peer_id)
    if (
        len(raw) != _PEER_ID_LENGTH
        or raw[: len(_PEER_ID_PREFIX)] != _PEER_ID_PREFIX
        or raw[len(_PEER_ID_PREFIX) : len(_PEER_ID_PREFIX) + len(_PROTO_SECP256K1_PREFIX)]
        != _PROTO_SECP256K1_PREFIX
    ):
        raise InvalidIdentity("not an inlined secp256k1 peer ID")
    public = raw[len(_PEER_ID_PREFIX) + len(_PROTO_SECP256K1_PREFIX) :]
    try:
        coincurve.PublicKey(public)
    except ValueError as exc:
        raise InvalidIdentity("peer ID embeds an invalid secp256k1 point") from exc
    return public


def eth_address_from_peer_id(peer_id: str | bytes) -> str:
    """The EIP-55 checksummed Ethereum address of the key behind a secp256k1 peer ID."""
    compressed = public_key_from_peer_id(peer_id)
    uncompressed = coincurve.PublicKey(compressed).format(compressed=False)
    return to_checksum_address(keccak(uncompressed[1:])[-20:])
