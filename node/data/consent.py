"""Consent tokens: the secret a patient holds, and the commitment that goes on chain.

A token is 32 random bytes handed to the patient (printed as 64 hex characters). Its
keccak256 is the *subject commitment*: what the manifest, the training data root and a
``ConsentWithdrawn`` event carry. Only the token holder (or the custodian node, which
keeps the private linkage table) can produce a withdrawal for a commitment; the
commitment alone reveals nothing about the patient.
"""

from __future__ import annotations

import re
import secrets
from typing import NewType

from eth_hash.auto import keccak

from node.errors import InvalidToken

__all__ = [
    "TOKEN_BYTES",
    "SubjectCommitment",
    "commitment_of",
    "format_token",
    "new_token",
    "parse_token",
]

TOKEN_BYTES = 32

SubjectCommitment = NewType("SubjectCommitment", bytes)
"""keccak256 of a consent token: 32 bytes, safe to publish."""

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def new_token() -> bytes:
    """A fresh consent token: 32 bytes from the OS CSPRNG."""
    return secrets.token_bytes(TOKEN_BYTES)


def commitment_of(token: bytes) -> SubjectCommitment:
    """The subject commitment of a token: keccak256(token), 32 bytes."""
    if not isinstance(token, (bytes, bytearray)) or len(token) != TOKEN_BYTES:
        raise InvalidToken(f"a consent token is {TOKEN_BYTES} bytes")
    return SubjectCommitment(keccak(bytes(token)))


def format_token(token: bytes) -> str:
    """The printable form of a token: 64 lowercase hex characters, no prefix."""
    if not isinstance(token, (bytes, bytearray)) or len(token) != TOKEN_BYTES:
        raise InvalidToken(f"a consent token is {TOKEN_BYTES} bytes")
    return bytes(token).hex()


def parse_token(text: str) -> bytes:
    """Parse a printed token (64 hex characters, optional ``0x``, surrounding spaces ok).

    Raises :class:`node.errors.InvalidToken` (a ``ValueError``) for anything else; the
    message never echoes the input, which is a secret.
    """
    cleaned = text.strip()
    if cleaned[:2] in ("0x", "0X"):
        cleaned = cleaned[2:]
    if not _HEX64.fullmatch(cleaned):
        raise InvalidToken(
            f"a consent token is {2 * TOKEN_BYTES} hex characters (optionally 0x-prefixed)"
        )
    return bytes.fromhex(cleaned)
