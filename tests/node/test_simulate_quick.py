"""The simulation's core (bench/gossip_sim.py) at N = 16: it learns, and what it runs is
the project's merge, not a copy of it."""

from __future__ import annotations

import pytest
import torch

from bench.gossip_sim import Digits, SimConfig, Simulation, load_digits_split
from node.merge import MeanStrategy, Update

CONFIG = SimConfig(peers=16, rounds=6, normaliser="neighbourhood", pairs=20)


@pytest.fixture(scope="module")
def digits() -> Digits:
    torch.set_num_threads(1)
    return load_digits_split(seed=0)


def test_sixteen_peers_learn_above_chance(digits: Digits) -> None:
    # Prepare
    sim = Simulation(CONFIG, digits)

    # Execute
    result = sim.run()

    # Assert: ten classes, so chance is 0.1; the peers exchanged real payloads
    assert result.accuracy_mean[0] < result.accuracy_mean[-1]
    assert result.accuracy_mean[-1] > 0.4
    assert result.merged_updates > 0
    assert result.bytes_sent_per_peer_round > 0
    assert result.payload_bytes_mean == pytest.approx(
        sum(sim.payload_sizes) / len(sim.payload_sizes)
    )


def test_the_merge_that_runs_is_node_merge(digits: Digits, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: the project's mean rule now returns a zero step
    def zero_step(self: MeanStrategy, updates: list[Update]) -> dict[str, torch.Tensor]:
        return {name: torch.zeros_like(t) for name, t in updates[0].tensors.items()}

    monkeypatch.setattr(MeanStrategy, "_aggregate", zero_step)
    sim = Simulation(CONFIG, digits)

    # Execute
    result = sim.run()

    # Assert: no peer moves from the genesis model, so every model is the same
    assert result.accuracy_max[-1] == result.accuracy_min[-1]
    assert result.accuracy_mean[-1] < 0.3
    assert result.disagreement_l2[-1] == 0.0
