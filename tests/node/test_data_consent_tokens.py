"""Consent tokens, commitments and the private linkage table."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from node.data import LinkageTable
from node.data.consent import commitment_of, format_token, new_token, parse_token
from node.errors import InvalidToken, LinkageError


def test_token_round_trip_and_commitment() -> None:
    token = new_token()
    assert len(token) == 32 and token != new_token()
    text = format_token(token)
    assert len(text) == 64 and text == text.lower()
    assert parse_token(text) == token
    assert parse_token("0x" + text.upper()) == token
    assert parse_token(f"  {text}\n") == token
    assert commitment_of(token) == keccak(token) and len(commitment_of(token)) == 32
    # A known vector: keccak256 of 32 zero bytes.
    assert commitment_of(bytes(32)).hex() == (
        "290decd9548b62a8d60345a988386fc84ba6bc95484008f6362f93160ef3e563")


@pytest.mark.parametrize("bad", ["", "0x", "12" * 31, "12" * 33, "zz" * 32, "0x" + "g" * 64])
def test_parse_token_rejects_and_never_echoes(bad: str) -> None:
    with pytest.raises(InvalidToken) as info:
        parse_token(bad)
    assert isinstance(info.value, ValueError)
    if len(bad) > 4:  # the input may be a (mistyped) secret: never in the message
        assert bad not in str(info.value)


def test_commitment_of_wrong_length() -> None:
    with pytest.raises(InvalidToken):
        commitment_of(b"short")


def test_linkage_file_is_0600_and_refused_when_readable_by_others(tmp_path: Path) -> None:
    table = LinkageTable.create()
    row = table.get_or_add("id:/P-123", "P-123")
    assert table.get_or_add("id:/P-123", "P-123") == row  # same patient, same row
    old_umask = os.umask(0)  # even a permissive umask must not widen the file
    try:
        path = table.save(tmp_path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    loaded = LinkageTable.load(tmp_path)
    assert loaded.secret == table.secret
    assert loaded.by_patient_id("P-123") == row
    assert loaded.by_token(row.token_hex) == row and loaded.by_commitment(row.commitment) == row

    path.chmod(0o644)
    with pytest.raises(LinkageError, match="chmod 600"):
        LinkageTable.load(tmp_path)
