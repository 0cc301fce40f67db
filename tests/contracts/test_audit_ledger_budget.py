"""AuditLedger's privacy budget on eth-tester in-process and on a Hardhat node (slow):
set at registration and changed by the admin with an event, summed exactly on every
record, and enforced by a custom error the binding translates into
`PrivacyBudgetExceeded`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_utils import keccak

from contracts._args import UINT40_MAX
from contracts.errors import (
    ContractRejected,
    InvalidInput,
    NodeRevoked,
    NotAdmin,
    NotRegistered,
    PrivacyBudgetExceeded,
)
from contracts.ledger import (
    DEFAULT_EPSILON_BUDGET,
    AuditLedger,
    account_address,
    epsilon_to_micros,
    new_private_key,
)
from contracts.records import PrivacyBudgetSet
from tests.contracts.conftest import BOTH_BACKENDS, Chain

CHAIN_BACKENDS = BOTH_BACKENDS
"""The chain tests of this module run on eth-tester and on a Hardhat node."""

BASE = bytes.fromhex("aa" * 32)
ROOT = bytes.fromhex("bb" * 32)


class Recorder:
    """Records one contribution per call on rounds 1, 2, 3... of one node (a refused
    record leaves its round to the next call)."""

    def __init__(self, node: AuditLedger) -> None:
        self.node = node
        self.round = 0

    def __call__(self, epsilon: float) -> object:
        round_ = self.round + 1
        result = self.node.record_contribution(
            keccak(f"{self.node.account}-{round_}".encode()), BASE, round_, 10, ROOT, epsilon
        )
        self.round = round_
        return result


def info(handle: AuditLedger, address: str | None = None):
    found = handle.node_info(address or handle.account or "")
    assert found is not None
    return found


# -- setting the budget -------------------------------------------------------------


def test_budget_is_set_at_registration_with_its_event(chain: Chain, admin: AuditLedger) -> None:
    address = account_address(new_private_key())

    result = admin.register_node(address, b"\x00\x25peer", 320, epsilon_budget=2.5)

    assert result.events[-1] == PrivacyBudgetSet(address, 2.5, 2_500_000, result.block_number, result.tx_hash)
    node = info(admin, address)
    assert (node.epsilon_budget, node.epsilon_budget_micros) == (2.5, 2_500_000)
    assert (node.epsilon_spent, node.epsilon_spent_micros, node.epsilon_remaining) == (0.0, 0, 2.5)
    assert admin.budget_changes() == [result.events[-1]]


def test_the_default_budget_and_rounding_to_the_nearest_micro(chain: Chain, admin: AuditLedger) -> None:
    default, rounded = account_address(new_private_key()), account_address(new_private_key())

    admin.register_node(default, b"\x00\x25a", 10)
    admin.register_node(rounded, b"\x00\x25b", 10, epsilon_budget=1.2345675001)

    assert info(admin, default).epsilon_budget == DEFAULT_EPSILON_BUDGET == 10.0
    assert info(admin, rounded).epsilon_budget_micros == 1_234_568


def test_admin_changes_a_budget_with_an_event(chain: Chain, admin: AuditLedger, registered_node) -> None:
    node = registered_node(epsilon_budget=1.0)
    other = registered_node()
    Recorder(node)(0.25)

    result = admin.set_privacy_budget(node.account or "", 3.0)

    assert result.events == (PrivacyBudgetSet(node.account or "", 3.0, 3_000_000, result.block_number,
                                              result.tx_hash),)
    assert (info(node).epsilon_budget, info(node).epsilon_spent) == (3.0, 0.25)  # spent is kept
    changes = admin.budget_changes(node=node.account)
    assert [(c.node, c.epsilon_budget) for c in changes] == [(node.account, 1.0), (node.account, 3.0)]
    assert [c.node for c in admin.budget_changes(node=other.account)] == [other.account]


def test_only_the_admin_sets_budgets_of_active_nodes(
    chain: Chain, admin: AuditLedger, registered_node
) -> None:
    node = registered_node(epsilon_budget=1.0)
    unknown = account_address(new_private_key())

    with pytest.raises(NotAdmin) as not_admin:
        node.set_privacy_budget(node.account or "", 100.0)
    assert not_admin.value.error_args == (node.account,)
    with pytest.raises(NotAdmin):
        node.register_node(unknown, b"peer", 10, epsilon_budget=100.0)
    with pytest.raises(NotRegistered) as missing:
        admin.set_privacy_budget(unknown, 1.0)
    assert missing.value.error_args == (unknown,)
    admin.revoke_node(node.account or "")
    with pytest.raises(NodeRevoked) as revoked:
        admin.set_privacy_budget(node.account or "", 2.0)
    assert revoked.value.error_args == (node.account,)
    assert info(admin, node.account).epsilon_budget == 1.0
    assert len(admin.budget_changes(node=node.account)) == 1


@pytest.mark.parametrize(
    ("budget", "message"),
    [(-0.1, "epsilon_budget must be a finite number >= 0"), (float("nan"), "finite"),
     (float("inf"), "finite"), (True, "finite"), ("1.0", "finite"),
     ((UINT40_MAX + 1) / 1_000_000, "too large")],
    ids=["negative", "nan", "inf", "bool", "str", "over-uint40"],
)
def test_a_bad_budget_is_refused_before_any_io(budget: object, message: str) -> None:
    # A handle on a port nobody listens on: any I/O would be ChainUnavailable.
    offline = AuditLedger("http://127.0.0.1:9", "0x" + "12" * 20, new_private_key(), timeout=0.5)
    address = account_address(new_private_key())

    with pytest.raises(InvalidInput, match=message):
        offline.register_node(address, b"peer", 10, epsilon_budget=budget)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=message):
        offline.set_privacy_budget(address, budget)  # type: ignore[arg-type]


# -- spending it --------------------------------------------------------------------


def test_spent_is_the_exact_sum_of_the_recorded_micros(chain: Chain, registered_node) -> None:
    node = registered_node(epsilon_budget=5.0)
    record = Recorder(node)
    epsilons = [0.1234567, 0.3, 0.0, 1e-7, 0.45678912, 2.0000004]

    for epsilon in epsilons:
        record(epsilon)

    recorded = [epsilon_to_micros(c.epsilon_spent) for c in node.contributions(node=node.account)]
    assert recorded == [123_457, 300_000, 0, 0, 456_789, 2_000_000]
    assert info(node).epsilon_spent_micros == sum(recorded) == 2_880_246
    assert info(node).epsilon_spent == 2.880246


def test_a_record_over_the_budget_is_refused_with_its_figures(chain: Chain, registered_node) -> None:
    node = registered_node(epsilon_budget=1.0)
    record = Recorder(node)
    record(0.6)

    with pytest.raises(PrivacyBudgetExceeded) as over:
        record(0.5)

    assert over.value.error_name == "AuditLedgerPrivacyBudgetExceeded"
    assert over.value.error_args == (node.account, 600_000, 500_000, 1_000_000)
    assert (over.value.node, over.value.spent, over.value.epsilon, over.value.budget) == (
        node.account, 0.6, 0.5, 1.0)
    assert (over.value.spent_micros, over.value.epsilon_micros, over.value.budget_micros) == (
        600_000, 500_000, 1_000_000)
    assert str(over.value) == (f"node {node.account} cannot spend 500000 more micro-epsilon: "
                               "it has spent 600000 of its budget of 1000000")
    assert isinstance(over.value, ContractRejected)
    assert (info(node).epsilon_spent_micros, info(node).last_round) == (600_000, 1)  # unchanged
    record(0.4)  # exactly the rest is within the budget, in the round that was refused
    assert info(node).epsilon_spent_micros == 1_000_000
    with pytest.raises(PrivacyBudgetExceeded) as one_more:
        record(1e-6)
    assert one_more.value.error_args == (node.account, 1_000_000, 1, 1_000_000)
    record(0.0)  # a record that spends nothing is still taken
    assert info(node).last_round == 3


def test_a_zero_budget_takes_only_records_without_dp(chain: Chain, registered_node) -> None:
    node = registered_node(epsilon_budget=0.0)
    record = Recorder(node)

    record(0.0)
    with pytest.raises(PrivacyBudgetExceeded) as over:
        record(1e-6)

    assert over.value.error_args == (node.account, 0, 1, 0)
    record(0.0)
    assert (info(node).epsilon_spent_micros, info(node).last_round) == (0, 2)


def test_lowering_the_budget_below_spent_stops_dp_records_only(
    chain: Chain, admin: AuditLedger, registered_node
) -> None:
    node = registered_node(epsilon_budget=1.0)
    record = Recorder(node)
    record(0.6)

    admin.set_privacy_budget(node.account or "", 0.5)

    lowered = info(node)
    assert (lowered.epsilon_spent, lowered.epsilon_budget, lowered.epsilon_remaining) == (0.6, 0.5, 0.0)
    assert not lowered.allows_epsilon(1e-6) and lowered.allows_epsilon(0.0)
    with pytest.raises(PrivacyBudgetExceeded) as over:
        record(0.1)
    assert over.value.error_args == (node.account, 600_000, 100_000, 500_000)
    record(0.0)
    admin.set_privacy_budget(node.account or "", 0.7)
    record(0.1)
    assert info(node).epsilon_spent_micros == 700_000


def test_the_sum_is_checked_without_overflow(chain: Chain, registered_node) -> None:
    node = registered_node(epsilon_budget=UINT40_MAX / 1_000_000)
    assert info(node).epsilon_budget_micros == UINT40_MAX

    # epsilonMicros is a uint64 argument: the largest one must be refused, not overflow
    with pytest.raises(PrivacyBudgetExceeded) as huge:
        node._transact("recordContribution", (keccak(b"h1"), BASE, 1, 1, ROOT, 2**64 - 1, 2**64 - 1))
    assert huge.value.error_args == (node.account, 0, 2**64 - 1, UINT40_MAX)
    node._transact("recordContribution", (keccak(b"h1"), BASE, 1, 1, ROOT, UINT40_MAX, 2**64 - 1))
    assert info(node).epsilon_spent_micros == UINT40_MAX
    with pytest.raises(PrivacyBudgetExceeded) as full:
        node._transact("recordContribution", (keccak(b"h2"), BASE, 2, 1, ROOT, 2**64 - 1, 2**64 - 1))
    assert full.value.error_args == (node.account, UINT40_MAX, 2**64 - 1, UINT40_MAX)


@pytest.mark.parametrize("epsilon", [0.0, 0.3999994, 0.4, 0.4000004, 0.4000006, 0.41])
def test_allows_epsilon_predicts_the_contract(chain: Chain, registered_node, epsilon: float) -> None:
    node = registered_node(epsilon_budget=1.0)
    record: Callable[[float], object] = Recorder(node)
    record(0.6)

    predicted = info(node).allows_epsilon(epsilon)

    try:
        record(epsilon)
        taken = True
    except PrivacyBudgetExceeded:
        taken = False
    assert predicted == taken == (epsilon_to_micros(epsilon) <= 400_000)
