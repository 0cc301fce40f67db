"""`AuditLedger.events` (every event of every kind, in chain order: what an indexer
reads) and `AuditLedger.block`."""

from __future__ import annotations

from collections.abc import Callable

from eth_utils import keccak

from contracts.ledger import AuditLedger
from contracts.records import (
    ConsentWithdrawn,
    ContributionRecorded,
    GenesisModelSet,
    NodeRegistered,
    NodeRevocation,
    PrivacyBudgetSet,
    SampleCapSet,
)
from tests.contracts.conftest import Chain


def test_events_lists_every_kind_in_chain_order(
    chain: Chain, admin: AuditLedger, registered_node: Callable[..., AuditLedger]
) -> None:
    start = admin.block_number() + 1
    admin.set_genesis_model(keccak(b"genesis"))
    node = registered_node()
    node.record_contribution(keccak(b"d1"), keccak(b"genesis"), 1, 10, keccak(b"root"), 0.5)
    node.withdraw_consent(keccak(b"subject"))
    admin.set_sample_cap(node.account or "", 7)
    admin.revoke_node(node.account or "")

    kinds = [type(e) for e in admin.events(from_block=start)]

    assert kinds == [GenesisModelSet, NodeRegistered, SampleCapSet, PrivacyBudgetSet, ContributionRecorded,
                     ConsentWithdrawn, SampleCapSet, NodeRevocation]
    blocks = [e.block_number for e in admin.events(from_block=start)]
    assert blocks == sorted(blocks)
    assert admin.events(from_block=blocks[-1] + 1) == []


def test_block_gives_number_hash_and_timestamp(chain: Chain, admin: AuditLedger) -> None:
    head = admin.block()
    assert head.number == admin.block_number() and head.hash.startswith("0x") and len(head.hash) == 66
    genesis = admin.block(0)
    assert genesis.number == 0 and genesis.hash != head.hash and genesis.timestamp <= head.timestamp
