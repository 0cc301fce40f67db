"""The binding's parts on their own: the custom-error and event tables cover the ABI,
the event decoder handles any argument layout, the sender recovers a stale nonce (on
eth-tester and Hardhat), Hardhat's error shapes translate as anvil's do."""

from __future__ import annotations

from dataclasses import dataclass

import eth_abi
import pytest
from eth_utils import keccak
from web3.exceptions import ContractLogicError, Web3RPCError

from contracts._connect import interface
from contracts._translate import CUSTOM_ERRORS, Boundary, CustomErrors, mined_anyway
from contracts.errors import ContractRejected, InsufficientFunds, NotAdmin, TransactionFailed
from contracts.events import EVENT_RECORDS, EventDecoder
from contracts.ledger import AuditLedger, account_address, new_private_key
from tests.contracts.conftest import BOTH_BACKENDS, Chain

CHAIN_BACKENDS = BOTH_BACKENDS
"""The chain tests of this module run on eth-tester and on a Hardhat node."""


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


def _hardhat_error(code: int, message: str, data: dict[str, object]) -> Web3RPCError:
    """A Hardhat JSON-RPC error as web3 raises it (shapes recorded from hardhat 2.29)."""
    error = {"code": code, "message": message, "data": {"message": message, **data}}
    response = {"jsonrpc": "2.0", "id": 1, "error": error}
    return Web3RPCError(message, rpc_response=response)  # type: ignore[arg-type]


def _raise(exc: Exception) -> None:
    raise exc


def test_hardhat_revert_data_and_its_mined_reverts_translate_like_anvils() -> None:
    # Prepare: AuditLedgerNotAdmin(caller) as Hardhat answers a call, and a send
    caller = account_address(new_private_key())
    selector = keccak(text="AuditLedgerNotAdmin(address)")[:4]
    revert = "0x" + (selector + eth_abi.encode(["address"], [caller])).hex()
    said = ("Error: VM Exception while processing transaction: reverted with an unrecognized "
            f"custom error (return data: {revert})")
    tx_hash = "0x" + "ab" * 32
    boundary = Boundary(interface().errors, "hardhat")

    # Execute
    from_call = boundary.translate(ContractLogicError(f"execution reverted: {said}", {"message": said, "data": revert}))
    from_send = _hardhat_error(-32603, said, {"txHash": tx_hash, "data": revert})
    poor = _hardhat_error(-32000, "Sender doesn't have enough funds to send tx. The max upfront cost is: 1", {})
    stale = _hardhat_error(-32000, "Nonce too low. Expected nonce to be 1 but got 0.", {"data": None})

    # Assert: the custom error decodes from both shapes; only a mined send has a hash
    assert isinstance(from_call, NotAdmin) and from_call.error_args == (caller,)
    assert isinstance(boundary.translate(from_send), NotAdmin)
    with pytest.raises(NotAdmin) as translated:  # as the sender sees it: after the boundary
        boundary.run(lambda: _raise(from_send))
    assert mined_anyway(translated.value) == tx_hash
    assert mined_anyway(stale) is None and mined_anyway(poor) is None
    assert type(boundary.translate(stale)) is TransactionFailed
    assert "nonce too low" in str(boundary.translate(stale)).lower()
    assert isinstance(boundary.translate(poor), InsufficientFunds)
