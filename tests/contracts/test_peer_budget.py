"""The recorder keeps the chain's epsilon equal to the accountant's and survives the
budget's refusal (eth-tester chain, real journal, real checkpoint folder)."""

from __future__ import annotations

from pathlib import Path

import trio

from contracts.ledger import AuditLedger, epsilon_to_micros
from node.checkpoint import CheckpointStore, JournalEntry
from node.models import build_model
from node.peer.chain_view import ChainView
from node.peer.durable import Durable
from node.peer.recorder import Recorder
from node.peer.status import BUDGET_SPENT, Counters
from node.privacy import DPConfig
from node.trainer import LocalTrainer
from tests.contracts.conftest import Chain
from tests.contracts.peer_fixtures import AnnounceLog, Node, encoded_delta, real_node
from tests.node.learning_data import digits_image_set


def queue_rounds(node: Node, durable: Durable, totals: list[float], first_round: int = 1) -> None:
    """Journal one queued DP contribution per lifetime total (the accountant after it)."""
    previous = durable.state.journal[-1].epsilon_total if durable.state.journal else 0.0
    for i, total in enumerate(totals):
        round_ = first_round + i
        delta = encoded_delta(node.address, round_, scale=1.0 + round_)
        key = "0x" + delta.delta_hash.hex()
        durable.store.save_payload(key, delta.payload)
        durable.state.journal.append(
            JournalEntry(round_, key, "0x" + "00" * 32, 40, "0x" + "11" * 32, total - (previous or 0.0),
                         epsilon_total=total)
        )
        previous = total


def recorder_for(node: Node, folder: Path) -> tuple[Recorder, Durable, AnnounceLog]:
    """A recorder over the checkpoint folder as a (re)started peer loads it."""
    store = CheckpointStore(folder)
    durable = Durable(store, store.load_state())
    net = AnnounceLog()
    recorder = Recorder(durable, ChainView(node.ledger), net, node.address, node.peer_id, "fp32", Counters(), poll=0.1)  # type: ignore[arg-type]
    return recorder, durable, net


def with_budget(chain: Chain, admin: AuditLedger, epsilon_budget: float) -> Node:
    node = real_node(chain, admin)
    admin.set_privacy_budget(node.address, epsilon_budget)
    return node


def chain_micros(node: Node) -> tuple[int, list[int]]:
    """(spent on chain, the recorded per-round epsilons), in micro-epsilon."""
    info = node.ledger.node_info(node.address)
    assert info is not None
    return info.epsilon_spent_micros, [epsilon_to_micros(c.epsilon_spent) for c in node.ledger.contributions(node=node.address)]


async def test_the_recorded_epsilons_sum_to_the_accountant_total_exactly(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    node = with_budget(chain, admin, 5.0)
    recorder, durable, net = recorder_for(node, tmp_path)
    totals = [0.3000006, 0.6000012, 0.9000018, 1.2345674]  # each round 0.3000006: rounds to 300001
    queue_rounds(node, durable, totals)

    await recorder._record_queued()

    spent, recorded = chain_micros(node)
    assert [e.status for e in durable.state.journal] == ["recorded"] * 4 and len(net.announced) == 4
    assert spent == sum(recorded) == epsilon_to_micros(totals[-1]) == 1_234_567
    assert recorded == [300_001, 300_000, 300_001, 334_565]  # not 300_001 each: no drift


async def test_across_a_crash_and_a_restart_nothing_is_counted_twice(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    node = with_budget(chain, admin, 5.0)
    recorder, durable, _ = recorder_for(node, tmp_path)
    queue_rounds(node, durable, [0.25, 0.5])
    await durable.save()
    first = durable.state.journal[0]
    # round 1 mined with its telescoped epsilon just before a crash; the journal never heard
    node.ledger.record_contribution(bytes.fromhex(first.delta_hash[2:]), bytes(32), 1, 40, b"\x11" * 32, 0.25)

    restarted, durable, _ = recorder_for(node, tmp_path)
    queue_rounds(node, durable, [0.75], first_round=3)  # trained after the restart
    await restarted._record_queued()

    spent, recorded = chain_micros(node)
    assert [e.status for e in durable.state.journal] == ["recorded"] * 3
    assert recorded == [250_000, 250_000, 250_000] and spent == epsilon_to_micros(0.75)


async def test_an_over_budget_record_is_rejected_for_good_and_a_restart_moves_past_it(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    node = with_budget(chain, admin, 1.0)
    recorder, durable, _ = recorder_for(node, tmp_path)
    queue_rounds(node, durable, [0.6, 1.1])
    durable.state.journal.append(JournalEntry(3, "0x" + encoded_delta(node.address, 3, 9.0).delta_hash.hex(),
                                              "0x" + "00" * 32, 40, "0x" + "11" * 32, 0.0, epsilon_total=0.0))

    await recorder._record_queued()

    ok, over, plain = durable.state.journal
    assert (ok.status, over.status, plain.status) == ("recorded", "rejected", "recorded")
    assert over.reason.startswith("privacy budget spent") and "600000" in over.reason
    assert recorder.state == "ok"  # the queue moved on: the last entry (no DP) recorded
    assert chain_micros(node)[0] == 600_000

    restarted, durable, net = recorder_for(node, tmp_path)
    await restarted._record_queued()  # nothing queued: nothing sent, nothing raised
    assert [e.status for e in durable.state.journal] == ["recorded", "rejected", "recorded"]
    assert net.announced == []


async def test_the_recorder_reads_the_budget_the_gate_decides_on(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    # real time: the reads run in worker threads, which a mock clock would jump past
    node = with_budget(chain, admin, 0.5)
    recorder, _, _ = recorder_for(node, tmp_path)
    dp = DPConfig(1.0, 1.0, noise_seed=0)
    trainer = LocalTrainer(build_model(seed=0), digits_image_set(), seed=1, batch_size=64, dp=dp)
    assert trainer.epsilon_after_round(10) > 0.5  # one round of these is over this budget

    async with trio.open_nursery() as nursery:
        nursery.start_soon(recorder.run)
        assert not await recorder.budget.allows_round(trainer, 10)
        assert recorder.budget.status().state == BUDGET_SPENT and recorder.budget.status().budget == 0.5
        admin.set_privacy_budget(node.address, 50.0)
        assert await recorder.budget.allows_round(trainer, 10)  # read at the recorder's next poll
        nursery.cancel_scope.cancel()
    assert recorder.budget.status().state == "ok" and recorder.budget.status().budget == 50.0
