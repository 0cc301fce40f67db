"""The MergeStrategy interface of node.merge and its four rules."""

from __future__ import annotations

import logging

import pytest
import torch

from node.merge import (
    STRATEGIES,
    IncompatibleUpdates,
    InvalidAggregationParameter,
    KrumStrategy,
    MeanStrategy,
    MedianStrategy,
    MergeStrategy,
    MultiKrumStrategy,
    NoUpdates,
    TrimmedMeanStrategy,
    UnknownStrategy,
    Update,
    strategy_from_name,
)

torch.set_num_threads(1)


def update(value: float, weight: float = 1.0, source: str = "peer") -> Update:
    return Update(
        tensors={"w": torch.full((2, 2), value), "n": torch.tensor(3)},
        weight=weight,
        source=source,
    )


def test_strategy_names_and_classes() -> None:
    assert STRATEGIES == ("mean", "median", "trimmed-mean", "krum", "multi-krum")
    for name in STRATEGIES:
        strategy = strategy_from_name(name)
        assert isinstance(strategy, MergeStrategy)
        assert strategy.name == name


def test_strategy_from_name_parameters_and_spelling() -> None:
    assert strategy_from_name("trimmed_mean", beta=0.1) == TrimmedMeanStrategy(beta=0.1)
    assert strategy_from_name(" KRUM ", f=2, m=3) == KrumStrategy(f=2, m=3)
    assert TrimmedMeanStrategy().beta == 0.2
    assert (KrumStrategy().f, KrumStrategy().m) == (1, 1)


def test_unknown_name_lists_valid_rules() -> None:
    with pytest.raises(UnknownStrategy) as info:
        strategy_from_name("fedprox")
    for name in STRATEGIES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [("mean", {"beta": 0.1}), ("krum", {"beta": 0.1}), ("trimmed-mean", {"beta": 0.5}),
     ("krum", {"f": -1}), ("krum", {"m": 0})],
)
def test_bad_parameters_are_rejected(name: str, params: dict[str, float]) -> None:
    with pytest.raises(InvalidAggregationParameter):
        strategy_from_name(name, **params)


def test_mean_is_weighted_by_sample_count() -> None:
    out = MeanStrategy().merge([update(0.0, weight=30), update(4.0, weight=10)])
    assert torch.allclose(out["w"], torch.full((2, 2), 1.0))  # (0*30 + 4*10) / 40


def test_robust_rules_ignore_weights() -> None:
    updates = [update(0.0, weight=1), update(1.0, weight=1), update(2.0, weight=1000)]
    assert torch.allclose(MedianStrategy().merge(updates)["w"], torch.ones(2, 2))


@pytest.mark.parametrize("name", STRATEGIES)
def test_single_update_merges_to_itself(name: str) -> None:
    only = update(2.5, weight=7)
    out = strategy_from_name(name).merge([only])
    assert torch.equal(out["w"], only.tensors["w"])
    assert torch.equal(out["n"], only.tensors["n"])
    assert out["w"] is not only.tensors["w"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_empty_input_is_an_error(name: str) -> None:
    with pytest.raises(NoUpdates):
        strategy_from_name(name).merge([])


@pytest.mark.parametrize("name", STRATEGIES)
def test_mismatched_shapes_are_an_error(name: str) -> None:
    odd = Update({"w": torch.zeros(3), "n": torch.tensor(3)}, 1.0, "odd")
    with pytest.raises(IncompatibleUpdates):
        strategy_from_name(name).merge([update(1.0), odd])


@pytest.mark.parametrize("name", STRATEGIES)
def test_non_finite_updates_are_dropped_and_logged(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    poisoned = update(float("nan"), source="bad-peer")
    with caplog.at_level(logging.WARNING, logger="node.merge"):
        out = strategy_from_name(name).merge([update(1.0), poisoned, update(1.0)])

    assert torch.allclose(out["w"], torch.ones(2, 2))
    assert "bad-peer" in caplog.text


def test_only_non_finite_updates_is_an_error() -> None:
    with pytest.raises(NoUpdates):
        MeanStrategy().merge([update(float("inf"))])


@pytest.mark.parametrize("name", ["median", "trimmed-mean", "krum"])
def test_robust_strategies_resist_a_byzantine_peer(name: str) -> None:
    honest = [update(1.0 + 0.01 * i, weight=10) for i in range(5)]
    byzantine = update(1e6, weight=10, source="attacker")

    mean = MeanStrategy().merge(honest + [byzantine])["w"]
    robust = strategy_from_name(name).merge(honest + [byzantine])["w"]

    assert float(mean.min()) > 1e5
    assert float((robust - 1.0).abs().max()) < 0.05


def test_inputs_are_not_modified() -> None:
    updates = [update(1.0), update(3.0)]
    before = [u.tensors["w"].clone() for u in updates]
    for name in STRATEGIES:
        strategy_from_name(name).merge(updates)
    assert all(torch.equal(u.tensors["w"], b) for u, b in zip(updates, before))


def test_multi_krum_leaves_out_the_f_least_central_and_averages_the_rest() -> None:
    honest = [update(v) for v in (1.0, 1.2, 0.8, 1.1, 0.9)]
    outliers = [update(-10.0), update(50.0)]

    out = MultiKrumStrategy(f=2).merge([*honest, *outliers])
    small = MultiKrumStrategy(f=2).merge([update(1.0), update(2.0), update(3.0), update(30.0)])

    assert torch.allclose(out["w"], torch.full((2, 2), 1.0))  # 7 updates: both outliers out
    assert torch.allclose(small["w"], torch.full((2, 2), 9.0))  # 4 updates: f lowered to 0, plain mean
    with pytest.raises(InvalidAggregationParameter):
        MultiKrumStrategy(f=-1)
