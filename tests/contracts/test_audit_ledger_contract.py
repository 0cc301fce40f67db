"""AuditLedger on eth-tester in-process and on a Hardhat node (EDR, slow): every
external function, its event arguments and its custom error, through the binding
(which must translate each backend's revert)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from eth_utils import keccak

from contracts.errors import (
    AlreadyRegistered,
    AlreadyWithdrawn,
    DuplicateContribution,
    GenesisAlreadySet,
    InsufficientFunds,
    InvalidInput,
    NodeRevoked,
    NotAdmin,
    NotRegistered,
    RejectedArgument,
    SampleCountOverCap,
    StaleRound,
)
from contracts.ledger import DEFAULT_EPSILON_BUDGET, AuditLedger, account_address, new_private_key
from contracts.records import (
    ConsentWithdrawn,
    ContributionRecorded,
    ContributionRef,
    GenesisModelSet,
    NodeInfo,
    NodeRegistered,
    NodeRevocation,
    PrivacyBudgetSet,
    SampleCapSet,
)
from tests.contracts.conftest import BOTH_BACKENDS, SAMPLE_CAP, Chain

CHAIN_BACKENDS = BOTH_BACKENDS
"""The chain tests of this module run on eth-tester and on a Hardhat node."""

D1 = bytes.fromhex("11" * 32)
D2 = bytes.fromhex("22" * 32)
BASE = bytes.fromhex("aa" * 32)
ROOT = bytes.fromhex("bb" * 32)
GAS_BOUND = 60_000
"""recordContribution's gas goal (README, issue 10)."""


def record(node: AuditLedger, delta: bytes = D1, round: int = 7, samples: int = 120,
           epsilon: float = 0.4321):
    return node.record_contribution(delta, BASE, round, samples, ROOT, epsilon)


# -- deployment and admin -----------------------------------------------------------


def test_deployer_is_admin_and_genesis_is_unset(chain: Chain, admin: AuditLedger) -> None:
    assert admin.admin() == account_address(chain.admin_key)
    assert admin.genesis_model() is None


def test_register_node_emits_event_and_sets_node_info(chain: Chain, admin: AuditLedger) -> None:
    address = account_address(new_private_key())

    result = admin.register_node(address, b"\x00\x25peer", 320)

    assert result.events == (
        NodeRegistered(address, b"\x00\x25peer", result.block_number, result.tx_hash),
        SampleCapSet(address, 320, result.block_number, result.tx_hash),
        PrivacyBudgetSet(address, DEFAULT_EPSILON_BUDGET, 10_000_000, result.block_number, result.tx_hash),
    )
    assert result.event == result.events[0]
    assert admin.node_info(address) == NodeInfo(
        address, b"\x00\x25peer", True, 320, 0, None,
        epsilon_budget=10.0, epsilon_spent=0.0, epsilon_budget_micros=10_000_000, epsilon_spent_micros=0,
    )
    assert admin.is_active_node(address)
    assert [r.node for r in admin.node_registrations()] == [address]
    assert admin.registered_nodes() == [admin.node_info(address)]


def test_register_node_errors(chain: Chain, admin: AuditLedger, registered_node) -> None:
    node = registered_node()
    address = account_address(new_private_key())

    with pytest.raises(NotAdmin) as not_admin:
        node.register_node(address, b"peer", 10)
    assert not_admin.value.error_name == "AuditLedgerNotAdmin"
    assert not_admin.value.error_args == (node.account,)

    with pytest.raises(AlreadyRegistered) as again:
        admin.register_node(node.account or "", b"other-peer", 10)
    assert again.value.error_args == (node.account,)

    with pytest.raises(RejectedArgument) as zero:
        admin.register_node("0x" + "00" * 20, b"peer", 10)
    assert (zero.value.error_name, zero.value.error_args) == ("AuditLedgerZeroAddress", ())

    # The binding refuses an empty peer ID and a zero cap; the contract does too.
    with pytest.raises(InvalidInput, match="peer_id"):
        admin.register_node(address, b"", 10)
    with pytest.raises(RejectedArgument) as empty:
        admin._transact("registerNode", (address, b"", 10, 0))
    assert (empty.value.error_name, empty.value.error_args) == ("AuditLedgerEmptyPeerId", ())
    for bad_cap in (0, 2**32, True):
        with pytest.raises(InvalidInput, match="sample_cap"):
            admin.register_node(address, b"peer", bad_cap)
    with pytest.raises(RejectedArgument) as zero_cap:
        admin._transact("registerNode", (address, b"peer", 0, 0))
    assert (zero_cap.value.error_name, zero_cap.value.error_args) == ("AuditLedgerZeroSampleCap", ())
    assert str(zero_cap.value) == "the contract rejected a zero sample cap"
    assert admin.node_info(address) is None  # nothing was registered


def test_revoke_node_emits_event_and_blocks_the_node(
    chain: Chain, admin: AuditLedger, registered_node
) -> None:
    node = registered_node()
    record(node, D1)
    before = admin.node_info(node.account or "")
    assert before is not None and (before.active, before.last_round, before.revoked_at_block) == (True, 7, None)

    result = admin.revoke_node(node.account or "")

    assert result.events == (NodeRevocation(node.account or "", result.block_number, result.tx_hash),)
    assert admin.node_info(node.account or "") == replace(
        before, active=False, revoked_at_block=result.block_number
    )
    with pytest.raises(NodeRevoked) as rec:
        record(node, D2)
    assert rec.value.error_args == (node.account,)
    with pytest.raises(NodeRevoked):
        node.withdraw_consent(D2)
    with pytest.raises(NodeRevoked):
        admin.revoke_node(node.account or "")
    with pytest.raises(AlreadyRegistered):  # revocation is final
        admin.register_node(node.account or "", b"peer", 10)
    with pytest.raises(NodeRevoked) as cap:
        admin.set_sample_cap(node.account or "", 10)
    assert cap.value.error_args == (node.account,)
    # its past record stays
    assert admin.contribution(D1) == ContributionRef(node.account or "", 7, 120)


def test_revoke_node_errors(chain: Chain, admin: AuditLedger, registered_node) -> None:
    node = registered_node()
    unknown = account_address(new_private_key())

    with pytest.raises(NotRegistered) as missing:
        admin.revoke_node(unknown)
    assert missing.value.error_args == (unknown,)
    with pytest.raises(NotAdmin) as not_admin:
        node.revoke_node(node.account or "")
    assert not_admin.value.error_args == (node.account,)
    assert admin.node_info(node.account or "").revoked_at_block is None  # type: ignore[union-attr]


def test_set_genesis_model_once(chain: Chain, admin: AuditLedger, registered_node) -> None:
    genesis = keccak(b"genesis")

    with pytest.raises(NotAdmin):
        registered_node().set_genesis_model(genesis)
    result = admin.set_genesis_model(genesis)

    assert result.event == GenesisModelSet(genesis, result.block_number, result.tx_hash)
    assert admin.genesis_model() == genesis
    with pytest.raises(GenesisAlreadySet) as again:
        admin.set_genesis_model(keccak(b"other"))
    assert again.value.error_args == (genesis,)
    with pytest.raises(InvalidInput, match="model_hash"):
        admin.set_genesis_model(b"\x00" * 32)


def test_set_genesis_model_zero_hash_rejected_by_contract(admin: AuditLedger) -> None:
    with pytest.raises(RejectedArgument) as zero:
        admin._transact("setGenesisModel", (b"\x00" * 32,))
    assert zero.value.error_name == "AuditLedgerZeroHash"


# -- contributions ------------------------------------------------------------------


def test_record_contribution_event_view_and_gas(chain: Chain, registered_node) -> None:
    node = registered_node(sample_cap=2**32 - 1)

    result = record(node, D1, round=2**64 - 1, samples=2**32 - 1, epsilon=1.2345678)

    assert result.event == ContributionRecorded(
        delta_hash=D1, node=node.account or "", round=2**64 - 1, base_model_hash=BASE,
        sample_count=2**32 - 1, data_root=ROOT, epsilon_spent=1.234568,
        block_number=result.block_number, tx_hash=result.tx_hash,
    )
    assert node.contribution(D1) == ContributionRef(node.account or "", 2**64 - 1, 2**32 - 1)
    assert node.contribution(D2) is None
    info = node.node_info(node.account or "")
    assert info is not None and info.last_round == 2**64 - 1


def test_record_contribution_gas_is_within_the_bound(chain: Chain, registered_node) -> None:
    # eth-tester's gas is deterministic: the first contribution of a node (its
    # lastRound slot goes from 0 to 1) and a later one (slot already non-zero).
    node = registered_node()

    first = record(node, D1, round=1, samples=SAMPLE_CAP)
    later = record(node, D2, round=2, samples=SAMPLE_CAP)

    print(f"recordContribution gas: first {first.gas_used}, later {later.gas_used}")
    assert first.gas_used <= GAS_BOUND, f"recordContribution cost {first.gas_used} gas"
    assert later.gas_used <= GAS_BOUND, f"recordContribution cost {later.gas_used} gas"


def test_record_contribution_errors(chain: Chain, admin: AuditLedger, registered_node) -> None:
    node = registered_node()
    record(node, D1, round=7)

    with pytest.raises(DuplicateContribution) as duplicate:
        record(node, D1, round=8)
    assert duplicate.value.error_args == (D1,)
    with pytest.raises(DuplicateContribution):  # another node cannot claim it either
        record(registered_node(), D1)
    with pytest.raises(NotRegistered) as stranger:
        record(admin, D2)
    assert stranger.value.error_args == (admin.account,)
    with pytest.raises(RejectedArgument) as zero:
        node._transact("recordContribution", (b"\x00" * 32, BASE, 9, 1, ROOT, 0, 2**64 - 1))
    assert zero.value.error_name == "AuditLedgerZeroHash"


@pytest.mark.parametrize("round_", [5, 4, 1], ids=["equal", "lower", "first-round"])
def test_a_round_at_or_below_the_last_one_is_stale(chain: Chain, registered_node, round_: int) -> None:
    node = registered_node()
    record(node, D1, round=5)

    with pytest.raises(StaleRound) as stale:
        record(node, D2, round=round_)

    assert stale.value.error_name == "AuditLedgerStaleRound"
    assert stale.value.error_args == (node.account, round_, 5)
    assert (stale.value.node, stale.value.round, stale.value.last_round) == (node.account, round_, 5)
    assert str(stale.value) == f"node {node.account} cannot record round {round_}: its last round is 5"
    assert node.contribution(D2) is None
    record(node, D2, round=6)  # the next round is fine
    assert node.node_info(node.account or "").last_round == 6  # type: ignore[union-attr]


def test_rounds_start_at_one_and_are_per_node(chain: Chain, registered_node) -> None:
    a, b = registered_node(), registered_node()

    with pytest.raises(StaleRound) as zero:
        record(a, D1, round=0)
    assert zero.value.error_args == (a.account, 0, 0)
    record(a, D1, round=1)
    record(b, D2, round=1)  # b's rounds are its own

    assert [a.node_info(n.account or "").last_round for n in (a, b)] == [1, 1]  # type: ignore[union-attr]


def test_a_sample_count_over_the_cap_is_refused(chain: Chain, registered_node) -> None:
    node = registered_node(sample_cap=100)

    with pytest.raises(SampleCountOverCap) as over:
        record(node, D1, round=1, samples=101)

    assert over.value.error_name == "AuditLedgerSampleCountOverCap"
    assert over.value.error_args == (node.account, 101, 100)
    assert (over.value.node, over.value.sample_count, over.value.sample_cap) == (node.account, 101, 100)
    assert str(over.value) == f"node {node.account} declared 101 samples, above its cap of 100"
    assert node.node_info(node.account or "").last_round == 0  # type: ignore[union-attr]
    # the cap itself is allowed, in the very round that was refused
    assert record(node, D1, round=1, samples=100).event is not None
    with pytest.raises(SampleCountOverCap) as huge:
        record(node, D2, round=2, samples=2**32 - 1)
    assert huge.value.error_args == (node.account, 2**32 - 1, 100)


def test_admin_changes_a_cap_with_an_event(chain: Chain, admin: AuditLedger, registered_node) -> None:
    node = registered_node(sample_cap=100)
    record(node, D1, round=1, samples=100)

    result = admin.set_sample_cap(node.account or "", 40)

    assert result.events == (SampleCapSet(node.account or "", 40, result.block_number, result.tx_hash),)
    info = admin.node_info(node.account or "")
    assert info is not None and (info.sample_cap, info.last_round) == (40, 1)
    assert [n.sample_cap for n in admin.registered_nodes()] == [40]
    with pytest.raises(SampleCountOverCap) as over:
        record(node, D2, round=2, samples=41)
    assert over.value.error_args == (node.account, 41, 40)
    assert node.contribution(D1) == ContributionRef(node.account or "", 1, 100)  # past records keep their count


def test_set_sample_cap_errors(chain: Chain, admin: AuditLedger, registered_node) -> None:
    node = registered_node()
    unknown = account_address(new_private_key())

    with pytest.raises(NotAdmin) as not_admin:
        node.set_sample_cap(node.account or "", 5_000)
    assert not_admin.value.error_args == (node.account,)
    with pytest.raises(NotRegistered) as missing:
        admin.set_sample_cap(unknown, 10)
    assert missing.value.error_args == (unknown,)
    with pytest.raises(InvalidInput, match="sample_cap"):
        admin.set_sample_cap(node.account or "", 0)
    with pytest.raises(RejectedArgument) as zero:
        admin._transact("setSampleCap", (node.account, 0))
    assert (zero.value.error_name, zero.value.error_args) == ("AuditLedgerZeroSampleCap", ())
    assert admin.node_info(node.account or "").sample_cap == SAMPLE_CAP  # type: ignore[union-attr]


def test_contribution_queries_filter_on_indexed_fields(chain: Chain, registered_node) -> None:
    a, b = registered_node(), registered_node()
    start = a.block_number()
    for i, (node, rnd) in enumerate([(a, 1), (a, 2), (b, 1), (b, 2), (a, 3)]):
        record(node, keccak(bytes([i])), round=rnd)

    assert len(a.contributions(from_block=start)) == 5
    assert [c.round for c in a.contributions(node=a.account, from_block=start)] == [1, 2, 3]
    assert {c.node for c in a.contributions(round=1, from_block=start)} == {a.account, b.account}
    assert [c.node for c in a.contributions(node=b.account, round=2)] == [b.account]
    only = a.contributions(delta_hash=keccak(bytes([3])))
    assert len(only) == 1 and only[0].node == b.account and only[0].round == 2


# -- consent ------------------------------------------------------------------------


def test_withdraw_consent_by_custodian(chain: Chain, registered_node) -> None:
    node = registered_node()
    subject = keccak(b"token-1")

    result = node.withdraw_consent(subject)

    assert result.event == ConsentWithdrawn(subject, node.account or "", False,
                                            result.block_number, result.tx_hash)
    assert node.is_withdrawn_for(subject, node.account or "")
    assert not node.is_withdrawn(subject)  # by token only: a custodian's binds itself alone
    assert node.withdrawals(subject=subject) == [result.event]
    with pytest.raises(AlreadyWithdrawn) as again:
        node.withdraw_consent(subject)
    assert again.value.error_args == (subject,)


def test_withdraw_consent_requires_active_node(
    chain: Chain, admin: AuditLedger, registered_node
) -> None:
    with pytest.raises(NotRegistered):
        admin.withdraw_consent(keccak(b"x"))
    with pytest.raises(RejectedArgument) as zero:
        registered_node()._transact("withdrawConsent", (b"\x00" * 32,))
    assert zero.value.error_name == "AuditLedgerZeroHash"


def test_withdraw_consent_with_token_by_anyone(chain: Chain, registered_node) -> None:
    token = bytes(range(32))
    commitment = keccak(token)
    relayer = chain.handle(chain.funded_key())  # not a node

    result = relayer.withdraw_consent_with_token(token)

    assert result.event == ConsentWithdrawn(commitment, relayer.account or "", True,
                                            result.block_number, result.tx_hash)
    assert relayer.is_withdrawn(commitment)
    with pytest.raises(AlreadyWithdrawn):
        relayer.withdraw_consent_with_token(token)
    with pytest.raises(AlreadyWithdrawn):  # the custodian sees the same commitment
        registered_node().withdraw_consent(commitment)
    with pytest.raises(RejectedArgument):
        relayer._transact("withdrawConsentWithToken", (b"\x00" * 32,))


# -- bad input and accounts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: n.record_contribution(b"\x01" * 31, BASE, 1, 1, ROOT, 0.1), "delta_hash must be 32 bytes"),
        (lambda n: n.record_contribution("11" * 32, BASE, 1, 1, ROOT, 0.1), "delta_hash must be 32 bytes"),
        (lambda n: n.record_contribution(D1, BASE, -1, 1, ROOT, 0.1), "round"),
        (lambda n: n.record_contribution(D1, BASE, 1, 2**32, ROOT, 0.1), "sample_count"),
        (lambda n: n.record_contribution(D1, BASE, 1, 1, ROOT, float("nan")), "epsilon"),
        (lambda n: n.record_contribution(D1, BASE, 1, 1, ROOT, -0.5), "epsilon"),
        (lambda n: n.withdraw_consent(b"\x00" * 32), "must not be all zeros"),
        (lambda n: n.node_info("0x1234"), "not a 20-byte hex address"),
        (lambda n: n.node_info("0x" + "aB" * 20), "invalid EIP-55 checksum"),
        (lambda n: n.contributions(node="node-0"), "not a 20-byte hex address"),
    ],
)
def test_bad_input_is_refused_before_sending(registered_node, call, message) -> None:
    node = registered_node()
    with pytest.raises(InvalidInput, match=message):
        call(node)


def test_bad_keys_and_read_only_handles(chain: Chain) -> None:
    with pytest.raises(InvalidInput, match="32 bytes"):
        chain.handle("0x1234")
    with pytest.raises(InvalidInput, match="hex"):
        chain.handle("zz" * 32)
    with pytest.raises(InvalidInput, match="no private key"):
        chain.handle().withdraw_consent_with_token(b"\x01" * 32)
    unknown = account_address(new_private_key())
    assert chain.handle().node_info(unknown) is None


def test_unfunded_sender_is_insufficient_funds(chain: Chain, admin: AuditLedger) -> None:
    key = new_private_key()
    admin.register_node(account_address(key), b"peer", 10)
    with pytest.raises(InsufficientFunds):  # a valid record: only the balance is wrong
        record(chain.handle(key), D1, samples=10)
