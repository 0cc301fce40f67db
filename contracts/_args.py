"""Argument checks of the binding: every malformed value (hash, address, key, number,
URL) becomes `InvalidInput` here, before anything is sent to the chain.

Each check returns the value in the form the ABI wants (32 `bytes`, a checksummed
address, an `int` in range), so callers pass its result straight on.
"""

from __future__ import annotations

import math

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from contracts.errors import InvalidInput
from contracts.units import DEFAULT_EPSILON_BUDGET, EPSILON_SCALE

__all__ = [
    "DEFAULT_EPSILON_BUDGET",
    "EPSILON_SCALE",
    "MAX_PEER_ID_BYTES",
    "UINT32_MAX",
    "UINT40_MAX",
    "UINT64_MAX",
    "UINT256_MAX",
    "ZERO32",
    "account",
    "address",
    "epsilon_budget_to_micros",
    "epsilon_to_micros",
    "hash32",
    "micros_to_epsilon",
    "nonzero_hash32",
    "peer_id",
    "rpc_url",
    "sample_cap",
    "uint",
]

UINT32_MAX = 2**32 - 1
UINT40_MAX = 2**40 - 1
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
MAX_PEER_ID_BYTES = 128
ZERO32 = b"\x00" * 32


def hash32(value: object, what: str) -> bytes:
    """Exactly 32 bytes (a keccak hash, a commitment, a Merkle root)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"{what} must be 32 bytes, got {type(value).__name__}")
    raw = bytes(value)
    if len(raw) != 32:
        raise InvalidInput(f"{what} must be 32 bytes, got {len(raw)} bytes")
    return raw


def nonzero_hash32(value: object, what: str) -> bytes:
    """32 bytes, not all zeros (the contract refuses a zero hash)."""
    raw = hash32(value, what)
    if raw == ZERO32:
        raise InvalidInput(f"{what} must not be all zeros")
    return raw


def address(value: object, what: str = "address") -> str:
    """A 20-byte hex address; mixed case must be a valid EIP-55 checksum."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a 0x-prefixed hex string, got {type(value).__name__}")
    if not is_hex_address(value):
        raise InvalidInput(f"{what} {value!r} is not a 20-byte hex address")
    body = value[2:] if value.startswith(("0x", "0X")) else value
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise InvalidInput(f"{what} {value!r} has an invalid EIP-55 checksum")
    return str(to_checksum_address(value))


def uint(value: object, bits_max: int, what: str) -> int:
    """An int (not a bool) in [0, bits_max]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= bits_max:
        raise InvalidInput(f"{what} must be in [0, {bits_max}], got {value}")
    return value


def sample_cap(value: object) -> int:
    """A node's sample cap: a uint32 above zero (the contract refuses a zero cap)."""
    cap = uint(value, UINT32_MAX, "sample_cap")
    if cap == 0:
        raise InvalidInput("sample_cap must be at least 1 (the most samples one contribution may declare)")
    return cap


def peer_id(value: object) -> bytes:
    """A raw libp2p peer ID multihash: non-empty, at most MAX_PEER_ID_BYTES."""
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise InvalidInput("peer_id must be non-empty bytes (the raw peer ID multihash)")
    if len(value) > MAX_PEER_ID_BYTES:
        raise InvalidInput(f"peer_id is {len(value)} bytes, at most {MAX_PEER_ID_BYTES}")
    return bytes(value)


def rpc_url(value: object) -> str:
    """An http(s) JSON-RPC URL."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise InvalidInput(f"rpc_url must be an http(s) URL, got {value!r}")
    return value


def account(private_key: object) -> LocalAccount:
    """The signing account of a 32-byte secp256k1 key given as hex str or bytes."""
    raw: bytes
    if isinstance(private_key, (bytes, bytearray)):
        raw = bytes(private_key)
    elif isinstance(private_key, str):
        text = private_key.strip().removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise InvalidInput("private key must be 64 hex characters") from exc
    else:
        raise InvalidInput(f"private key must be hex str or bytes, got {type(private_key).__name__}")
    if len(raw) != 32:
        raise InvalidInput(f"private key must be 32 bytes (64 hex characters), got {len(raw)} bytes")
    try:
        return Account.from_key(raw)
    except (ValueError, TypeError) as exc:  # eth_keys: out of the secp256k1 range
        raise InvalidInput("private key is not a valid secp256k1 secret") from exc


def epsilon_to_micros(epsilon: float, what: str = "epsilon_spent", bits_max: int = UINT64_MAX) -> int:
    """Float epsilon -> the micro-epsilon integer the contract takes, rounded to the
    nearest; the one conversion every epsilon (spent or budget) goes through."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) \
            or not math.isfinite(epsilon) or epsilon < 0:
        raise InvalidInput(f"{what} must be a finite number >= 0, got {epsilon!r}")
    micros = round(epsilon * EPSILON_SCALE)
    if micros > bits_max:
        raise InvalidInput(
            f"{what} {epsilon} is too large: at most {micros_to_epsilon(bits_max)} "
            f"({bits_max} micro-epsilon)"
        )
    return micros


def epsilon_budget_to_micros(epsilon: float) -> int:
    """A privacy budget -> the uint40 micro-epsilon the contract stores per node."""
    return epsilon_to_micros(epsilon, "epsilon_budget", UINT40_MAX)


def micros_to_epsilon(micros: int) -> float:
    """The contract's micro-epsilon -> float epsilon."""
    return micros / EPSILON_SCALE
