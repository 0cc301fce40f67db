"""The binding's parts on their own: the custom-error and event tables cover the ABI,
the event decoder handles any argument layout, the sender recovers a stale nonce."""

from __future__ import annotations

from dataclasses import dataclass

import eth_abi
from eth_utils import keccak

from contracts._connect import interface
from contracts._translate import CUSTOM_ERRORS, CustomErrors
from contracts.errors import ContractRejected, NotAdmin
from contracts.events import EVENT_RECORDS, EventDecoder
from contracts.ledger import AuditLedger, account_address, new_private_key
from tests.contracts.conftest import Chain


def _abi_names(kind: str) -> set[str]:
    return {str(item["name"]) for item in interface().abi if item.get("type") == kind}


def test_every_custom_error_of_the_abi_has_its_class() -> None:
    assert _abi_names("error") == set(CUSTOM_ERRORS)


def test_every_event_of_the_abi_has_its_record() -> None:
    assert _abi_names("event") == set(EVENT_RECORDS)


def test_custom_error_decodes_its_arguments() -> None:
    caller = account_address(new_private_key())
    data = keccak(text="AuditLedgerNotAdmin(address)")[:4] + eth_abi.encode(["address"], [caller])

    error = interface().errors.decode(data)

    assert isinstance(error, NotAdmin)
    assert (error.error_name, error.error_args) == ("AuditLedgerNotAdmin", (caller,))
    assert str(error) == f"{caller} is not the consortium admin"


def test_custom_error_without_a_line_is_still_contract_rejected() -> None:
    abi = [{"type": "error", "name": "AuditLedgerOverCap",
            "inputs": [{"name": "cap", "type": "uint32"}, {"name": "asked", "type": "uint32"}]}]
    data = keccak(text="AuditLedgerOverCap(uint32,uint32)")[:4] + eth_abi.encode(["uint32", "uint32"], [5, 9])

    error = CustomErrors(abi).decode(data)

    assert type(error) is ContractRejected
    assert (error.error_name, error.error_args) == ("AuditLedgerOverCap", (5, 9))
    assert "AuditLedgerOverCap(5, 9)" in str(error)
    assert CustomErrors(abi).decode(b"\x01\x02\x03\x04") is None


@dataclass(frozen=True)
class _Moved:
    amount: int
    to: str
    note: bytes
    flag: bool
    block_number: int
    tx_hash: str


def test_event_decoder_handles_interleaved_indexed_and_dynamic_arguments() -> None:
    # indexed argument in the middle, a dynamic one in the data: eth_abi path, ABI order
    abi = [{"type": "event", "name": "Moved", "anonymous": False, "inputs": [
        {"name": "amount", "type": "uint64", "indexed": False},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "note", "type": "bytes", "indexed": False},
        {"name": "flag", "type": "bool", "indexed": True},
    ]}]
    decoder = EventDecoder(abi, {"Moved": (_Moved, _Moved)})
    to = account_address(new_private_key())
    topic0 = "0x" + keccak(text="Moved(uint64,address,bytes,bool)").hex()
    raw = {  # as eth_getLogs JSON gives it
        "address": "0x" + "11" * 20,
        "topics": [topic0, "0x" + "00" * 12 + to[2:].lower(), "0x" + "00" * 31 + "01"],
        "data": "0x" + eth_abi.encode(["uint64", "bytes"], [7, b"hello"]).hex(),
        "blockNumber": "0x2a",
        "transactionHash": "0x" + "ee" * 32,
    }
    formatted = {  # as web3 formats a receipt's log
        **raw,
        "topics": [bytes.fromhex(t[2:]) for t in raw["topics"]],
        "data": bytes.fromhex(raw["data"][2:]),
        "blockNumber": 42,
        "transactionHash": bytes.fromhex("ee" * 32),
    }
    expected = _Moved(7, to, b"hello", True, 42, "0x" + "ee" * 32)

    assert decoder.topic(_Moved) == topic0
    assert decoder.decode_as(_Moved, [raw]) == [expected]
    assert decoder.first([formatted], "0x" + "11" * 20) == expected
    assert decoder.first([formatted], "0x" + "22" * 20) is None  # another contract's log


def test_two_handles_on_one_key_recover_the_stale_nonce(chain: Chain, admin: AuditLedger) -> None:
    # Prepare: two handles of one key, each with its own local nonce
    key = chain.funded_key()
    admin.register_node(account_address(key), b"\x00\x25nonce", 10)
    first, second = chain.handle(key), chain.handle(key)
    first.withdraw_consent(keccak(b"s1"))  # first's nonce cache: n + 1
    second.withdraw_consent(keccak(b"s2"))  # second reads n + 1 from the chain: n + 2

    # Execute: first still believes n + 1 is free
    result = first.withdraw_consent(keccak(b"s3"))

    # Assert: the nonce was re-read from the chain and the transaction mined
    assert result.event is not None and first.is_withdrawn_for(keccak(b"s3"), first.account or "")
