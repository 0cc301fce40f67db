"""A privacy budget the contract enforces and the peer obeys, with real processes: anvil,
AuditLedger, two `medgossip node start` peers training with DP-SGD on real DICOM.

peer-0 is given a budget that fits exactly TRAINED rounds of its accountant (computed
from its own data and config, halfway between the totals after TRAINED and TRAINED + 1
rounds); peer-1 a budget far above its run. The run checks:
- the contract refuses an over-budget record sent directly with peer-0's key, naming
  its figures (PrivacyBudgetExceeded);
- peer-0 stops contributing cleanly: TRAINED records, none refused, its status says
  "privacy budget spent", it stays alive and goes on merging peer-1's later deltas;
- every figure on chain equals the peers' accountants: per node, the recorded epsilons
  sum to the accountant's total (as the peer reports it and as its checkpointed
  accountant computes it), which is also the node's spent on chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import keccak

from contracts.errors import PrivacyBudgetExceeded
from contracts.ledger import AuditLedger, epsilon_to_micros
from node.cli.localnet import LocalNet, PeerHandle, create
from node.config import NodeConfig
from node.peer.status import BUDGET_SPENT
from node.privacy import AccountantState, PrivacyAccountant
from tests.integration.peer_harness import logs, state, status, wait_until

pytestmark = pytest.mark.slow

ROUNDS = 8
TRAINED = 3
"""rounds peer-0's budget allows."""
TEMPLATE = NodeConfig(
    rounds=ROUNDS, local_steps=5, batch_size=8, fan_out=1, pull_wait=0.5, chain_poll=0.5, linger=-1,
    dp_noise_multiplier=1.0,
)


def budget_for_rounds(peer: PeerHandle, rounds: int) -> float:
    """Halfway between the peer's lifetime epsilon after `rounds` and `rounds + 1` rounds,
    as its own trainer (same data, split and DP settings) will account them."""
    from node.data import load_image_set
    from node.learner import Learner
    from node.peer import learner_settings

    settings = learner_settings(peer.config)
    trainer = Learner(settings, load_image_set(peer.config.data_dir, size=peer.config.image_size)).trainer
    assert trainer.accountant is not None and settings.dp is not None
    rate = min(1.0, settings.batch_size / trainer.train_size)
    steps = settings.local_steps
    low, high = (trainer.accountant.epsilon_after(settings.dp.noise_multiplier, rate, k * steps)
                 for k in (rounds, rounds + 1))
    return round((low + high) / 2, 6)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNet, float]]:
    """The finished run (both peers done, every recorded delta merged), still alive."""
    net = create(tmp_path_factory.mktemp("privacy-budget") / "net", 2, template=TEMPLATE, seed=5,
                 max_images=240, epsilon_budget=1000.0)
    try:
        budget = budget_for_rounds(net.peers[0], TRAINED)
        net.ledger(net.devnet.admin_key).set_privacy_budget(net.peers[0].address, budget)
        net.start_all()
        wait_until(net, lambda: all(status(p).get("finished") for p in net.peers), 120, "every peer to finish")
        wait_until(net, net.everyone_merged_everything, 30, "every recorded delta merged")
        yield net, budget
    finally:
        net.stop()


def recorded_micros(net: LocalNet, peer: PeerHandle) -> list[int]:
    return [epsilon_to_micros(c.epsilon_spent) for c in net.ledger().contributions(node=peer.address)]


def test_the_contract_refuses_an_over_budget_record_sent_directly(run: tuple[LocalNet, float]) -> None:
    net, budget = run
    peer = net.peers[0]
    ledger = AuditLedger(net.devnet.rpc_url, net.devnet.contract,
                         private_key="0x" + peer.config.key_file.read_text().strip().removeprefix("0x"))
    info = ledger.node_info(peer.address)
    assert info is not None

    with pytest.raises(PrivacyBudgetExceeded) as refused:
        ledger.record_contribution(keccak(b"over budget"), bytes(32), info.last_round + 1, 1, bytes(32), 5.0)

    assert refused.value.error_args == (peer.address, info.epsilon_spent_micros, 5_000_000,
                                        epsilon_to_micros(budget))
    after = ledger.node_info(peer.address)
    assert after is not None and (after.epsilon_spent_micros, after.last_round) == (info.epsilon_spent_micros,
                                                                                    info.last_round)


def test_the_peer_stops_contributing_cleanly_and_keeps_merging(run: tuple[LocalNet, float]) -> None:
    net, budget = run
    spent, other = net.peers
    journal = state(spent).journal
    s = spent.status()
    assert s is not None and s.budget is not None

    assert spent.alive(), logs([spent])
    assert [e.round for e in journal] == list(range(1, TRAINED + 1)), logs([spent])
    assert all(e.status == "recorded" for e in journal)  # gated before training: none refused
    assert len(recorded_micros(net, spent)) == TRAINED
    assert (s.budget.state, s.recorder, s.round, s.finished) == (BUDGET_SPENT, "ok", ROUNDS, True)
    assert s.budget.next_round_total is not None and s.budget.next_round_total > budget >= s.epsilon_total
    merged_after = [h for h, r in state(spent).merged.items() if r > TRAINED]
    other_hashes = {"0x" + c.delta_hash.hex() for c in net.ledger().contributions(node=other.address)}
    assert merged_after and set(merged_after) <= other_hashes  # peer-1's later rounds, merged
    assert "privacy budget spent" in spent.log_path.read_text()
    assert "Traceback" not in spent.log_path.read_text()


@pytest.mark.parametrize("index", [0, 1])
def test_every_figure_on_chain_equals_the_peers_accountant(run: tuple[LocalNet, float], index: int) -> None:
    net, _ = run
    peer = net.peers[index]
    s = peer.status()
    info = net.ledger().node_info(peer.address)
    checkpointed = state(peer).accountant
    assert s is not None and s.budget is not None and info is not None and checkpointed is not None
    accountant = PrivacyAccountant.from_state(AccountantState.from_dict(checkpointed), peer.config.dp_delta)

    recorded = recorded_micros(net, peer)

    assert accountant.epsilon() == s.epsilon_total > 0
    assert sum(recorded) == info.epsilon_spent_micros == epsilon_to_micros(s.epsilon_total)
    assert s.budget.recorded == info.epsilon_spent
    assert all(m > 0 for m in recorded)
