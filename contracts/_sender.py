"""Sending transactions with one key: build, sign, send, wait for the receipt.

The nonce is kept locally under a lock, so worker threads of one process can transact
concurrently without asking the chain each time; two processes must not share a key.
A send that fails on the nonce (another writer, a restarted chain) re-reads it from
the chain and retries; that is the one transient failure retried here ("nonce too
low" on geth and anvil, "Nonce too low/high. Expected nonce to be ..." on Hardhat). A
transaction Hardhat mined although it answered the send with its revert counts as sent
(`_translate.mined_anyway`): its receipt reports the revert, as on other chains. Every
RPC call goes through the `Boundary`, so failures arrive as `contracts.errors`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint

from contracts._translate import Boundary, mined_anyway
from contracts.errors import LedgerError, TransactionFailed

__all__ = ["TransactionSender", "wait_for_receipt", "wait_for_receipts"]

log = logging.getLogger(__name__)

_NONCE_ATTEMPTS = 3
_FEE_CACHE_S = 5.0
_MAX_PRIORITY_WEI = 1_000_000_000


class TransactionSender:
    """One signing key's transactions on one chain."""

    def __init__(self, w3: Web3, signer: LocalAccount, boundary: Boundary) -> None:
        self._w3 = w3
        self._signer = signer
        self._rpc = boundary.run
        self._boundary = boundary
        self._batches = True
        """False once the chain refused a JSON-RPC batch."""
        self._nonce_lock = threading.Lock()
        self._next_nonce: int | None = None
        self._chain_id: int | None = None
        self._fee_cache: tuple[float, int] | None = None

    @property
    def address(self) -> str:
        return str(self._signer.address)

    def send(self, data: bytes, *, to: str | None, gas: int | None = None, value: int = 0) -> str:
        """Estimate gas (unless `gas`; estimation also reverts early with the contract's
        reason), sign with the local nonce, send; return the tx hash. `to=None` deploys."""
        tx = self._unsigned(data, to, value)
        tx["gas"] = gas if gas is not None else self._estimate(tx)
        tx["maxFeePerGas"], tx["maxPriorityFeePerGas"] = self._fees()
        for attempt in range(_NONCE_ATTEMPTS):
            with self._nonce_lock:
                raw = self._sign(tx, self._nonce())
                try:
                    tx_hash: Any = self._rpc(lambda: self._w3.eth.send_raw_transaction(raw))
                except LedgerError as exc:
                    tx_hash = mined_anyway(exc)  # Hardhat: mined, reverted, told at once
                    if tx_hash is None:
                        self._next_nonce = None  # re-read from the chain next time
                        if (isinstance(exc, TransactionFailed) and "nonce" in str(exc).lower()
                                and attempt < _NONCE_ATTEMPTS - 1):
                            log.info("nonce out of sync for %s, refreshing", self._signer.address)
                            continue
                        raise
                self._next_nonce = tx["nonce"] + 1
            return tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
        raise TransactionFailed("could not find a valid nonce")  # pragma: no cover

    def send_all(self, datas: Sequence[bytes], *, to: str, gas: int) -> list[str | LedgerError]:
        """Send several transactions with consecutive nonces, in one JSON-RPC batch (one
        round trip) where the chain is reached over HTTP, else one by one (`send`).

        One answer per transaction, in order: its hash, or its error. Those after the
        first refused one are answered with an error too (unsent, or queued behind a
        nonce gap: a later send of theirs finds out), and the nonce is read again from
        the chain. A server that refuses batches is asked one by one from then on.
        """
        if len(datas) < 2 or not self._batches or not isinstance(self._w3.provider, HTTPProvider):
            return self._one_by_one(datas, to, gas)
        tx = self._unsigned(b"", to, 0)
        tx["gas"] = gas
        tx["maxFeePerGas"], tx["maxPriorityFeePerGas"] = self._fees()
        provider = self._w3.provider
        with self._nonce_lock:
            first = self._nonce()
            raws = [self._sign({**tx, "data": data}, first + i) for i, data in enumerate(datas)]
            calls = [(RPCEndpoint("eth_sendRawTransaction"), ["0x" + raw.hex()]) for raw in raws]
            responses = self._rpc(lambda: provider.make_batch_request(calls))
            if not isinstance(responses, list):  # one error for the whole batch: none was taken
                log.info("the chain refused a JSON-RPC batch (%s): sending one by one", responses.get("error"))
                self._batches = False
                answers = None
            else:
                answers = self._batch_answers(responses)
                taken = sum(1 for answer in answers if isinstance(answer, str))
                self._next_nonce = first + taken if taken == len(answers) else None
        return answers if answers is not None else self._one_by_one(datas, to, gas)

    def _batch_answers(self, responses: list[Any]) -> list[str | LedgerError]:
        answers: list[str | LedgerError] = []
        for response in responses:
            if answers and not isinstance(answers[-1], str):
                answers.append(TransactionFailed("not sent: an earlier transaction of its batch was refused"))
            elif response.get("error") is None and isinstance(response.get("result"), str):
                answers.append(response["result"])
            else:
                exc = Web3RPCError(str(response.get("error")), rpc_response=response)
                answers.append(mined_anyway(exc) or self._boundary.translate(exc))
        return answers

    def _one_by_one(self, datas: Sequence[bytes], to: str, gas: int) -> list[str | LedgerError]:
        answers: list[str | LedgerError] = []
        for data in datas:
            try:
                answers.append(self.send(data, to=to, gas=gas))
            except LedgerError as exc:
                answers.append(exc)
                answers += [TransactionFailed("not sent: an earlier transaction of its batch was refused")
                            ] * (len(datas) - len(answers))
                break
        return answers

    def _nonce(self) -> int:
        """The next nonce (call with the lock held): ours, or the chain's pending count."""
        if self._next_nonce is None:
            self._next_nonce = self._rpc(
                lambda: int(self._w3.eth.get_transaction_count(self._signer.address, "pending"))
            )
        return self._next_nonce

    def _sign(self, tx: dict[str, Any], nonce: int) -> bytes:
        tx["nonce"] = nonce
        return bytes(self._signer.sign_transaction(tx).raw_transaction)

    def upfront_cost(self, data: bytes, *, to: str | None, value: int = 0) -> int:
        """Wei the account must hold for the chain to accept this transaction as `send`
        would build it: its gas limit x its max fee per gas, plus `value` (0 on a chain
        whose gas price is 0). Estimation reverts early with the contract's reason."""
        return self.gas_limit(data, to=to, value=value) * self._fees()[0] + value

    def _unsigned(self, data: bytes, to: str | None, value: int) -> dict[str, Any]:
        tx: dict[str, Any] = {"value": value, "chainId": self._chain(), "data": data}
        if to is not None:
            tx["to"] = to
        return tx

    def gas_limit(self, data: bytes, *, to: str | None, value: int = 0) -> int:
        """The gas limit `send` would give this transaction (estimation reverts early
        with the contract's reason)."""
        return self._estimate(self._unsigned(data, to, value))

    def _estimate(self, tx: dict[str, Any]) -> int:
        """The estimate with a margin (a quarter plus 10,000: state may change before
        the transaction is mined)."""
        estimate = self._rpc(
            lambda: int(self._w3.eth.estimate_gas({**tx, "from": self._signer.address}))  # type: ignore[typeddict-item]
        )
        return estimate + estimate // 4 + 10_000

    def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = self._rpc(lambda: int(self._w3.eth.chain_id))
        return self._chain_id

    def _fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): generous on a devnet, cached 5 s."""
        now = time.monotonic()
        if self._fee_cache is None or now - self._fee_cache[0] > _FEE_CACHE_S:
            price = self._rpc(lambda: int(self._w3.eth.gas_price))
            self._fee_cache = (now, price)
        price = self._fee_cache[1]
        priority = min(price, _MAX_PRIORITY_WEI)
        return 2 * price + priority, priority


def wait_for_receipt(w3: Web3, boundary: Boundary, tx_hash: str, timeout: float) -> Any:
    """Poll until `tx_hash` is mined; a reverted one raises its translated reason."""
    receipt = _mined(w3, boundary, tx_hash, timeout)
    if receipt["status"] != 1:
        _explain_failed(w3, boundary, tx_hash, receipt)
    return receipt


def wait_for_receipts(w3: Web3, boundary: Boundary, tx_hashes: Sequence[str], timeout: float) -> list[Any]:
    """The receipts of one sender's transactions with consecutive nonces, in order, as
    `wait_for_receipt` gives them (a reverted one: its error, as the answer). Once the
    last is mined all are, so the others are read in one JSON-RPC batch over HTTP."""
    if not tx_hashes:
        return []
    if len(tx_hashes) < 2 or not isinstance(w3.provider, HTTPProvider):
        return [_receipt_or_error(w3, boundary, h, timeout) for h in tx_hashes]
    last = _mined(w3, boundary, tx_hashes[-1], timeout)
    try:
        with w3.batch_requests() as batch:
            for tx_hash in tx_hashes[:-1]:
                batch.add(w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
            earlier = boundary.run(batch.execute)
    except (LedgerError, TransactionNotFound):  # no batches there, or one was replaced: one by one
        return [_receipt_or_error(w3, boundary, h, timeout) for h in tx_hashes]
    receipts: list[Any] = []
    for tx_hash, receipt in zip(tx_hashes, [*earlier, last]):
        try:
            if receipt["status"] != 1:
                _explain_failed(w3, boundary, tx_hash, receipt)
            receipts.append(receipt)
        except LedgerError as exc:
            receipts.append(exc)
    return receipts


def _receipt_or_error(w3: Web3, boundary: Boundary, tx_hash: str, timeout: float) -> Any:
    try:
        return wait_for_receipt(w3, boundary, tx_hash, timeout)
    except LedgerError as exc:
        return exc


def _mined(w3: Web3, boundary: Boundary, tx_hash: str, timeout: float) -> Any:
    """Poll until `tx_hash` is mined; its receipt, reverted or not."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return boundary.run(lambda: w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            pass
        if time.monotonic() > deadline:
            raise TransactionFailed(f"transaction {tx_hash} not mined within {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _explain_failed(w3: Web3, boundary: Boundary, tx_hash: str, receipt: Any) -> None:
    """A mined transaction reverted: replay it as a call to learn the reason, on the
    state before its block (later transactions of the block, e.g. the rest of a
    pipeline, must not change the answer), then after it (an earlier transaction of
    the block may be what made it revert). A replay that reverts raises its reason."""
    tx = boundary.run(lambda: w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
    call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
    block = int(receipt["blockNumber"])
    for state in (max(0, block - 1), block):
        boundary.run(lambda: w3.eth.call(call, state))  # type: ignore[arg-type]  # noqa: B023
    raise TransactionFailed(
        f"transaction {tx_hash} reverted in block {receipt['blockNumber']} "
        f"(gas used {receipt['gasUsed']} of {tx['gas']})"
    )
