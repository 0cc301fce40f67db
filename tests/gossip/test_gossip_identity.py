"""gossip.identity: one secp256k1 secret = libp2p peer ID = Ethereum account."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from gossip import identity
from gossip.errors import InvalidIdentity


def test_eth_address_from_peer_id_equals_eth_account_address() -> None:
    for _ in range(20):
        secret = identity.generate_secret()
        peer_id = identity.peer_id_from_secret(secret)
        expected = Account.from_key(secret).address
        assert identity.eth_address_from_peer_id(peer_id) == expected
        assert identity.eth_address_from_peer_id(identity.peer_id_bytes_from_secret(secret)) == expected


def test_peer_id_matches_libp2p_derivation() -> None:
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.peer.id import ID

    secret = identity.generate_secret()
    libp2p_id = ID.from_pubkey(create_new_key_pair(secret).public_key)
    assert identity.peer_id_from_secret(secret) == libp2p_id.to_base58()
    assert identity.peer_id_bytes_from_secret(secret) == libp2p_id.to_bytes()


def test_bytes_and_text_forms_round_trip() -> None:
    secret = identity.generate_secret()
    raw = identity.peer_id_bytes_from_secret(secret)
    text = identity.peer_id_from_bytes(raw)
    assert identity.peer_id_to_bytes(text) == raw
    assert text.startswith("16U")


def test_load_or_create_secret_persists_with_mode_0600(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "node.key"
    first = identity.load_or_create_secret(key_file)
    second = identity.load_or_create_secret(key_file)
    assert first == second
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_load_or_create_secret_rejects_garbage(tmp_path: Path) -> None:
    key_file = tmp_path / "bad.key"
    key_file.write_text("not hex\n")
    with pytest.raises(InvalidIdentity):
        identity.load_or_create_secret(key_file)
    key_file.write_text("00" * 32)  # zero is not a valid scalar
    with pytest.raises(InvalidIdentity):
        identity.load_or_create_secret(key_file)


def test_load_or_create_secret_says_which_file_and_what_to_do(tmp_path: Path) -> None:
    binary = tmp_path / "binary.key"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(InvalidIdentity, match="binary.key is not a key file.*64 hex"):
        identity.load_or_create_secret(binary)
    with pytest.raises(InvalidIdentity, match="cannot read key file"):
        identity.load_or_create_secret(tmp_path)  # a folder where the file should be
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(InvalidIdentity, match="cannot create key file .*node.key"):
        identity.load_or_create_secret(a_file / "keys" / "node.key")
    short = tmp_path / "short.key"
    short.write_text("0x" + "12" * 31)
    with pytest.raises(InvalidIdentity, match="short.key does not hold a valid key"):
        identity.load_or_create_secret(short)


def test_load_accepts_0x_prefix_and_whitespace(tmp_path: Path) -> None:
    secret = identity.generate_secret()
    key_file = tmp_path / "node.key"
    key_file.write_text(f"  0x{secret.hex()}\n\n")
    assert identity.load_or_create_secret(key_file) == secret


def test_eth_address_is_eip55_checksummed() -> None:
    from eth_utils import is_checksum_address

    for _ in range(20):
        address = identity.eth_address_from_peer_id(identity.peer_id_from_secret(identity.generate_secret()))
        assert is_checksum_address(address) and address != address.lower()


def test_non_secp256k1_peer_id_is_rejected() -> None:
    ed25519_style = "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
    with pytest.raises(InvalidIdentity):
        identity.eth_address_from_peer_id(ed25519_style)
    with pytest.raises(InvalidIdentity):
        identity.eth_address_from_peer_id("not-base58-0OIl")


def test_importing_identity_does_not_import_libp2p() -> None:
    code = "import sys, gossip.identity; print('libp2p' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
