"""The peer's side of the privacy budget, without a chain: the prospective epsilon of a
round (asked of the opacus accountant without taking the steps), the telescoping of the
recorded epsilons to the accountant's total, and the gate's decision."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import trio
import trio.testing

from contracts.ledger import epsilon_to_micros
from contracts.records import NodeInfo
from node.errors import PrivacyConfigError
from node.models import build_model
from node.peer.budget import PrivacyBudget, micros_to_record, within_budget
from node.peer.status import BUDGET_SPENT
from node.privacy import DPConfig, PrivacyAccountant
from node.trainer import LocalTrainer
from tests.node.learning_data import digits_image_set


def dp_trainer(mechanism: str = "rdp", noise: float = 1.0) -> LocalTrainer:
    dp = DPConfig(noise, 1.0, accountant=mechanism, noise_seed=0)  # type: ignore[arg-type]
    return LocalTrainer(build_model(seed=0), digits_image_set(), seed=1, lr=0.5, batch_size=32, dp=dp)


def node_info(budget_micros: int, spent_micros: int) -> NodeInfo:
    return NodeInfo(
        address="0x" + "ab" * 20, peer_id=b"peer", active=True, sample_cap=100, last_round=0,
        revoked_at_block=None, epsilon_budget=budget_micros / 1e6, epsilon_spent=spent_micros / 1e6,
        epsilon_budget_micros=budget_micros, epsilon_spent_micros=spent_micros,
    )


# -- the prospective epsilon ------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["rdp", "prv"])
def test_the_epsilon_a_round_would_bring_is_the_one_it_brings_and_nothing_is_spent(mechanism: str) -> None:
    trainer = dp_trainer(mechanism)
    trainer.train(6)
    assert trainer.accountant is not None
    before, steps_before = trainer.epsilon_total, trainer.accountant.steps

    predicted = trainer.epsilon_after_round(10)

    assert (trainer.epsilon_total, trainer.accountant.steps) == (before, steps_before)  # not taken
    report = trainer.train(10)
    assert predicted == report.epsilon_total  # the same float: same history, same accountant
    assert predicted > before


def test_epsilon_after_merges_equal_runs_like_the_trainer_and_checks_its_arguments() -> None:
    accountant = PrivacyAccountant("rdp", delta=1e-5)
    for _ in range(5):
        accountant.step(1.1, 0.1)

    predicted = accountant.epsilon_after(1.1, 0.1, 7)

    history = accountant.state().history
    assert history == ((1.1, 0.1, 5),)  # unchanged
    for _ in range(7):
        accountant.step(1.1, 0.1)
    assert accountant.state().history == ((1.1, 0.1, 12),)
    assert predicted == accountant.epsilon()
    assert accountant.epsilon_after(1.1, 0.1, 0) == accountant.epsilon()
    with pytest.raises(PrivacyConfigError, match="sample rate"):
        accountant.epsilon_after(1.1, 0.0, 3)


def test_without_dp_a_round_brings_no_epsilon() -> None:
    trainer = LocalTrainer(build_model(seed=0), digits_image_set(), seed=1)

    assert trainer.epsilon_after_round(10) == 0.0 == trainer.train(10).epsilon_total


# -- telescoping -----------------------------------------------------------------------


def test_recorded_micros_telescope_to_the_accountant_total_where_per_round_rounding_drifts() -> None:
    # Rounds of 0.6 micro-epsilon each: rounding each round's own epsilon records 1 each
    # (3 after 3 rounds); the accountant's total after 3 rounds is 1.8 -> 2.
    totals = [0.6e-6, 1.2e-6, 1.8e-6]
    spent = 0

    recorded = []
    for total in totals:
        micros = micros_to_record(total, spent)
        recorded.append(micros)
        spent += micros

    assert recorded == [1, 0, 1]
    assert spent == epsilon_to_micros(totals[-1]) == 2
    per_round = [epsilon_to_micros(b - a) for a, b in zip([0.0, *totals], totals)]
    assert sum(per_round) == 3  # what recording each round's epsilon as it is would sum to


def test_a_record_the_chain_already_has_adds_nothing_and_a_refused_one_is_caught_up() -> None:
    # mined before a crash: the chain's sum is already the total
    assert micros_to_record(0.42, 420_000) == 0
    # round 2 was refused (never summed): round 3 records rounds 2 and 3 together
    assert micros_to_record(0.9, 300_000) == 600_000


@pytest.mark.parametrize(
    ("budget", "spent", "total", "allowed"),
    [(1_000_000, 0, 1.0, True), (1_000_000, 0, 1.0000006, False), (1_000_000, 600_000, 0.9999994, True),
     (1_000_000, 1_200_000, 1.2, True),  # nothing left to record: a zero record is always taken
     (1_000_000, 0, math.inf, False), (0, 0, 1e-6, False), (0, 0, 0.0, True)],
)
def test_within_budget_follows_the_contract_rule(budget: int, spent: int, total: float, allowed: bool) -> None:
    assert within_budget(node_info(budget, spent), total) is allowed


# -- the gate ----------------------------------------------------------------------------


async def test_the_gate_trains_within_the_budget_stops_at_it_and_resumes_when_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    trainer = dp_trainer()
    trainer.train(10)
    after_next = trainer.epsilon_after_round(10)
    gate = PrivacyBudget(poll=1.0)
    assert gate.status().state == "unknown"

    gate.seen(node_info(epsilon_to_micros(after_next), epsilon_to_micros(trainer.epsilon_total)))
    assert await gate.allows_round(trainer, 10)  # exactly the budget
    assert gate.status().state == "ok" and gate.status().next_round_total == after_next

    gate.seen(node_info(epsilon_to_micros(after_next) - 1, epsilon_to_micros(trainer.epsilon_total)))
    assert not await gate.allows_round(trainer, 10)  # one micro-epsilon short
    spent = gate.status()
    assert spent.state == BUDGET_SPENT and spent.budget == (epsilon_to_micros(after_next) - 1) / 1e6

    async def raise_budget() -> None:
        gate.seen(node_info(epsilon_to_micros(after_next) + 5, epsilon_to_micros(trainer.epsilon_total)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(raise_budget)  # read while the gate waits on its refusal
        assert await gate.allows_round(trainer, 10)
    assert gate.status().state == "ok"


async def test_a_failed_read_keeps_the_last_known_budget_and_no_dp_always_trains(
    autojump_clock: trio.testing.MockClock,
) -> None:
    trainer = dp_trainer()
    gate = PrivacyBudget(poll=1.0)
    gate.seen(node_info(0, 0))

    gate.seen(None)  # the chain did not answer

    assert not await gate.allows_round(trainer, 10)
    assert gate.status().state == BUDGET_SPENT and gate.status().budget == 0.0
    plain = LocalTrainer(build_model(seed=0), digits_image_set(), seed=1)
    assert await PrivacyBudget(poll=1.0).allows_round(plain, 10)


# -- what the status says ------------------------------------------------------------------


def test_the_status_carries_the_budget_and_says_when_it_is_spent(tmp_path: Path) -> None:
    from node.peer.status import PeerStatus, PrivacyBudgetStatus
    from tests.node.peer_status_sample import sample_status

    spent = sample_status(epsilon_total=5.1090745, withdrawals_ignored=1,
                          budget=PrivacyBudgetStatus(BUDGET_SPENT, 5.385469, 5.109075, 5.66))
    spent.save(tmp_path)

    assert PeerStatus.load(tmp_path) == spent
    assert spent.epsilon_summary() == "5.1091 of 5.3855: privacy budget spent"
    lagging = sample_status(epsilon_total=0.9, budget=PrivacyBudgetStatus("ok", 2.0, 0.6, 1.2))
    assert lagging.epsilon_summary() == "0.9000 of 2.0000 (0.6000 on chain)"
    assert sample_status(epsilon_total=0.0).epsilon_summary() == "0.0000 (budget not read yet)"
