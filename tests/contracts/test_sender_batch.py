"""`TransactionSender`'s answers to a JSON-RPC batch of sends: per transaction, its hash
or its translated error, and nothing after the first refusal counts as sent."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3

from contracts._sender import TransactionSender
from contracts._translate import Boundary
from contracts.errors import InsufficientFunds, TransactionFailed
from contracts._connect import interface

HASH = "0x" + "ab" * 32
MINED = "0x" + "cd" * 32


def sender() -> TransactionSender:
    return TransactionSender(Web3(), Account.create(), Boundary(interface().errors, "test"))


def test_each_answer_is_its_hash_or_its_error_and_the_rest_are_not_sent() -> None:
    responses = [
        {"jsonrpc": "2.0", "id": 0, "result": HASH},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "insufficient funds for gas * price + value"}},
        {"jsonrpc": "2.0", "id": 2, "result": HASH},
    ]
    answers = sender()._batch_answers(responses)
    assert answers[0] == HASH
    assert isinstance(answers[1], InsufficientFunds)
    assert isinstance(answers[2], TransactionFailed) and "earlier transaction" in str(answers[2])


def test_a_send_hardhat_mined_and_reverted_counts_as_sent() -> None:
    reverted = {"jsonrpc": "2.0", "id": 0, "error": {
        "code": -32603, "message": "reverted with custom error", "data": {"txHash": MINED, "data": "0x"}}}
    assert sender()._batch_answers([reverted, {"jsonrpc": "2.0", "id": 1, "result": HASH}]) == [MINED, HASH]
