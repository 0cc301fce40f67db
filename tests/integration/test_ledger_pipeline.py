"""`AuditLedger.record_contributions`: several records of one node sent back to back
(consecutive nonces, no wait between them), their receipts awaited afterwards. On a
real chain node (anvil, and Hardhat: the second EVM) with mining held, so the records
really are in flight together."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from eth_utils import keccak
from web3 import HTTPProvider, Web3

from contracts.errors import InvalidInput, LedgerError, SampleCountOverCap, StaleRound
from contracts.ledger import AuditLedger
from contracts.records import NewContribution, TxResult
from devnet import DevnetInfo
from devnet.manage import DEFAULT_SAMPLE_CAP as SAMPLE_CAP

pytestmark = pytest.mark.slow  # a chain node as a separate process

BASE = keccak(b"base model")
ROOT = keccak(b"data root")


def record(round_: int, samples: int = 10, epsilon: float = 0.25) -> NewContribution:
    return NewContribution(keccak(f"delta {round_}".encode()), BASE, round_, samples, ROOT, epsilon)


@pytest.fixture
def node(ledger_net: DevnetInfo) -> AuditLedger:
    return AuditLedger(ledger_net.rpc_url, ledger_net.contract, ledger_net.nodes[0].private_key)


@pytest.fixture
def w3(ledger_net: DevnetInfo) -> Iterator[Web3]:
    w3 = Web3(HTTPProvider(ledger_net.rpc_url))
    yield w3
    w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]


def pipelined(w3: Web3, node: AuditLedger, records: list[NewContribution]) -> list[TxResult | LedgerError]:
    """Run the pipeline with mining held until every record is pending, then mine them
    in one block."""
    account = node.account or ""
    before = w3.eth.get_transaction_count(account)  # type: ignore[arg-type]
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    results: list[TxResult | LedgerError] = []
    worker = threading.Thread(target=lambda: results.extend(node.record_contributions(records)), daemon=True)
    worker.start()
    while worker.is_alive() and w3.eth.get_transaction_count(account, "pending") - before < len(records):  # type: ignore[arg-type]
        worker.join(0.01)
    pending = w3.eth.get_transaction_count(account, "pending") - before  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    worker.join(30)
    assert not worker.is_alive() and pending == len(records), pending
    return results


def test_records_go_out_together_and_a_reverted_one_fails_alone_with_its_reason(w3: Web3, node: AuditLedger) -> None:
    over_cap = record(2, samples=SAMPLE_CAP + 1)
    results = pipelined(w3, node, [record(1), over_cap, record(3)])
    # The middle one reused the first's gas limit, so it reverted when mined, with its reason.
    assert [type(r) for r in results] == [TxResult, SampleCountOverCap, TxResult]
    first, third = results[0], results[2]
    assert isinstance(first, TxResult) and isinstance(third, TxResult)
    assert first.block_number == third.block_number  # in flight together, mined in one block
    assert node.contribution(record(1).delta_hash) is not None
    assert node.contribution(over_cap.delta_hash) is None
    info = node.node_info(node.account or "")
    assert info is not None and info.last_round == 3 and info.epsilon_spent_micros == 500_000


def test_sending_stops_at_the_first_record_the_chain_will_not_take(w3: Web3, node: AuditLedger) -> None:
    node.record_contribution(*_args(record(5)))
    account = node.account or ""
    nonce = w3.eth.get_transaction_count(account)  # type: ignore[arg-type]
    # The first is stale: its estimate reverts, nothing is sent.
    assert [type(r) for r in node.record_contributions([record(4), record(6)])] == [StaleRound]
    assert w3.eth.get_transaction_count(account) == nonce  # type: ignore[arg-type]
    # An epsilon that cannot be recorded stops the pipeline after the records before it.
    results = node.record_contributions([record(6), record(7, epsilon=float("nan")), record(8)])
    assert [type(r) for r in results] == [TxResult, InvalidInput]
    assert node.contribution(record(8).delta_hash) is None


def test_an_empty_pipeline_sends_nothing(node: AuditLedger) -> None:
    assert node.record_contributions([]) == []


def _args(r: NewContribution) -> tuple[bytes, bytes, int, int, bytes, float]:
    return (r.delta_hash, r.base_model_hash, r.round, r.sample_count, r.data_root, r.epsilon_spent)

