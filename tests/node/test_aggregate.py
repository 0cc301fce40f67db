"""The pure aggregation rules of node.aggregate, on hand-computed cases."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from node.aggregate import (
    AggregationError,
    IncompatibleUpdates,
    InvalidAggregationParameter,
    NoUpdates,
    clip_norm,
    coordinate_median,
    is_finite,
    krum,
    krum_select,
    l2_norm,
    trimmed_mean,
    weighted_mean,
)

torch.set_num_threads(1)


def upd(*values: float, steps: int = 0) -> dict[str, torch.Tensor]:
    """A two-tensor update: ``w`` holds ``values``, ``b`` their negation, plus a buffer."""
    w = torch.tensor(values, dtype=torch.float32)
    return {"w": w, "b": -w, "steps": torch.tensor(steps, dtype=torch.int64)}


def close(a: torch.Tensor, b: list[float] | float) -> bool:
    return torch.allclose(a, torch.as_tensor(b, dtype=a.dtype), atol=1e-6)


# --- weighted mean -----------------------------------------------------------------


def test_weighted_mean_hand_computed() -> None:
    updates = [upd(1.0, 2.0), upd(3.0, 6.0)]

    out = weighted_mean(updates, [1, 3])

    # (1*1 + 3*3)/4 = 2.5, (1*2 + 3*6)/4 = 5
    assert close(out["w"], [2.5, 5.0])
    assert close(out["b"], [-2.5, -5.0])


def test_weighted_mean_equal_weights_is_plain_mean() -> None:
    out = weighted_mean([upd(0.0), upd(1.0), upd(5.0)], [7, 7, 7])
    assert close(out["w"], [2.0])


def test_zero_weight_excludes_update() -> None:
    out = weighted_mean([upd(1.0), upd(100.0)], [2, 0])
    assert close(out["w"], [1.0])


@pytest.mark.parametrize(
    "weights", [[1.0], [1.0, -1.0], [0, 0], [1.0, float("nan")], [1.0, float("inf")]]
)
def test_weighted_mean_rejects_bad_weights(weights: list[float]) -> None:
    with pytest.raises(InvalidAggregationParameter):
        weighted_mean([upd(1.0), upd(2.0)], weights)


# --- median / trimmed mean ---------------------------------------------------------


def test_median_odd_and_even() -> None:
    odd = coordinate_median([upd(1.0, 9.0), upd(5.0, 3.0), upd(2.0, 4.0)])
    even = coordinate_median([upd(1.0, 9.0), upd(5.0, 3.0), upd(2.0, 4.0), upd(4.0, 0.0)])

    assert close(odd["w"], [2.0, 4.0])
    # sorted columns (1,2,4,5) and (0,3,4,9): middle pairs average to 3 and 3.5
    assert close(even["w"], [3.0, 3.5])
    assert close(even["b"], [-3.0, -3.5])


def test_trimmed_mean_hand_computed() -> None:
    updates = [upd(v) for v in (1.0, 2.0, 3.0, 4.0, 100.0)]

    out = trimmed_mean(updates, 0.2)  # k = floor(0.2 * 5) = 1: drop 1 and 100

    assert close(out["w"], [3.0])


def test_trimmed_mean_beta_zero_is_mean() -> None:
    updates = [upd(v) for v in (1.0, 2.0, 6.0)]
    assert close(trimmed_mean(updates, 0.0)["w"], [3.0])


def test_trimmed_mean_trims_one_at_each_end_from_three_updates() -> None:
    # floor(0.2 * 4) = 0, but a trimmed mean that trims nothing is no defence:
    # from n >= 3 at least the largest and the smallest value are dropped.
    assert close(trimmed_mean([upd(v) for v in (1.0, 2.0, 3.0, 10.0)], 0.2)["w"], [2.5])
    assert close(trimmed_mean([upd(v) for v in (1.0, 2.0, 100.0)], 0.2)["w"], [2.0])
    assert close(trimmed_mean([upd(v) for v in (1.0, 100.0)], 0.2)["w"], [50.5])  # n = 2: nothing to trim


def test_clip_norm_bounds_the_step_of_one_update() -> None:
    big = {"w": torch.tensor([30.0, 40.0]), "steps": torch.tensor([7])}

    clipped, was = clip_norm(big, 5.0)
    same, was_not = clip_norm({"w": torch.tensor([3.0, 4.0])}, 5.0)

    assert was and not was_not
    assert l2_norm(clipped) == pytest.approx(5.0)
    assert close(clipped["w"], [3.0, 4.0]) and int(clipped["steps"]) == 7  # direction kept, ints untouched
    assert close(same["w"], [3.0, 4.0])


@pytest.mark.parametrize("beta", [-0.1, 0.5, 0.9, float("nan")])
def test_trimmed_mean_rejects_bad_beta(beta: float) -> None:
    with pytest.raises(InvalidAggregationParameter):
        trimmed_mean([upd(1.0), upd(2.0)], beta)


# --- krum --------------------------------------------------------------------------


def test_krum_picks_most_central_update() -> None:
    # w values 0, 1, 2, 3, 50; n = 5, f = 1 -> score over n - f - 2 = 2 closest others.
    # scores: 0 -> 1+4=5, 1 -> 1+1=2, 2 -> 1+1=2, 3 -> 1+4=5, 50 -> 47^2+48^2.
    # The b tensor doubles each distance, which does not change the order.
    updates = [upd(v) for v in (0.0, 1.0, 2.0, 3.0, 50.0)]

    assert krum_select(updates, f=1, m=1) == [1]  # tie 1 vs 2 -> input order
    assert close(krum(updates, f=1)["w"], [1.0])


def test_multi_krum_averages_the_m_best() -> None:
    updates = [upd(v) for v in (0.0, 1.0, 2.0, 3.0, 50.0)]

    assert krum_select(updates, f=1, m=3) == [1, 2, 0]
    assert close(krum(updates, f=1, m=3)["w"], [1.0])  # mean of 1, 2, 0


def test_krum_caps_m_at_presumed_honest() -> None:
    updates = [upd(v) for v in (0.0, 1.0, 2.0, 3.0, 50.0)]
    assert len(krum_select(updates, f=1, m=10)) == 4


def test_krum_lowers_f_when_too_few_updates() -> None:
    # n = 4 < 2*2 + 3: f falls back to (4 - 3) // 2 = 0, scores over 2 closest.
    updates = [upd(v) for v in (0.0, 1.0, 2.0, 40.0)]

    assert krum_select(updates, f=2, m=1) == [1]


@pytest.mark.parametrize("n", [1, 2])
def test_krum_tiny_neighbourhood_falls_back_to_first(n: int) -> None:
    updates = [upd(7.0), upd(-3.0)][:n]
    assert close(krum(updates, f=1)["w"], [7.0])


@pytest.mark.parametrize(("f", "m"), [(-1, 1), (1, 0), (1.5, 1), (True, 1)])
def test_krum_rejects_bad_parameters(f: object, m: object) -> None:
    with pytest.raises(InvalidAggregationParameter):
        krum([upd(1.0), upd(2.0)], f=f, m=m)  # type: ignore[arg-type]


# --- robustness --------------------------------------------------------------------


def test_robust_rules_resist_an_outlier_while_mean_moves() -> None:
    gen = torch.Generator().manual_seed(0)
    honest = [{"w": 1.0 + 0.01 * torch.randn(50, generator=gen)} for _ in range(6)]
    attacker = {"w": torch.full((50,), 1e6)}
    updates = honest + [attacker]

    mean = weighted_mean(updates, [1.0] * len(updates))["w"]
    robust = {
        "median": coordinate_median(updates)["w"],
        "trimmed": trimmed_mean(updates, 0.2)["w"],
        "krum": krum(updates, f=1)["w"],
        "multi-krum": krum(updates, f=1, m=4)["w"],
    }

    assert (mean - 1.0).abs().min() > 1e5
    for name, result in robust.items():
        assert (result - 1.0).abs().max() < 0.05, name


# --- dtypes, shapes, errors --------------------------------------------------------


def test_dtype_preserved_and_int_buffers_from_first() -> None:
    a = {"h": torch.tensor([1.0, 2.0], dtype=torch.float16), "n": torch.tensor([3])}
    b = {"h": torch.tensor([3.0, 4.0], dtype=torch.float16), "n": torch.tensor([9])}

    for out in (
        weighted_mean([a, b], [1, 1]),
        coordinate_median([a, b]),
        trimmed_mean([a, b], 0.1),
        krum([a, b], f=0, m=2),
    ):
        assert out["h"].dtype == torch.float16
        assert close(out["h"].float(), [2.0, 3.0])
        assert out["n"].dtype == torch.int64
        assert out["n"].tolist() == [3]


def test_result_does_not_alias_inputs() -> None:
    a = upd(1.0, steps=4)
    out = coordinate_median([a])
    out["w"].add_(1.0)
    out["steps"].add_(1)
    assert a["w"].tolist() == [1.0] and int(a["steps"]) == 4


RULES = [
    lambda us: weighted_mean(us, [1.0] * len(us)),
    coordinate_median,
    lambda us: trimmed_mean(us, 0.2),
    lambda us: krum(us, f=1),
]


@pytest.mark.parametrize("rule", RULES)
def test_empty_input_is_an_error(rule) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NoUpdates):
        rule([])


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize(
    "other",
    [
        {"w": torch.zeros(3), "b": torch.zeros(2), "steps": torch.tensor(0)},  # shape
        {"w": torch.zeros(2, dtype=torch.float64), "b": torch.zeros(2), "steps": torch.tensor(0)},
        {"w": torch.zeros(2), "steps": torch.tensor(0)},  # missing name
        {"w": torch.zeros(2), "b": torch.zeros(2), "c": torch.zeros(1), "steps": torch.tensor(0)},
    ],
    ids=["shape", "dtype", "missing", "extra"],
)
def test_mismatched_updates_are_rejected(rule, other) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IncompatibleUpdates) as info:
        rule([upd(1.0, 2.0), other])
    assert isinstance(info.value, (AggregationError, ValueError))


def test_is_finite() -> None:
    assert is_finite(upd(1.0, 2.0))
    assert not is_finite(upd(1.0, float("nan")))
    assert not is_finite(upd(float("-inf")))


# --- properties --------------------------------------------------------------------

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(finite, min_size=1, max_size=6), n=st.integers(1, 6))
def test_identical_updates_aggregate_to_themselves(values: list[float], n: int) -> None:
    updates = [upd(*values) for _ in range(n)]
    expected = torch.tensor(values, dtype=torch.float32)

    for out in (
        coordinate_median(updates),
        trimmed_mean(updates, 0.3),
        krum(updates, f=1, m=2),
        weighted_mean(updates, list(range(1, n + 1))),
    ):
        assert torch.allclose(out["w"], expected, rtol=1e-5, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    columns=st.lists(st.lists(finite, min_size=3, max_size=3), min_size=1, max_size=7),
    beta=st.floats(0.0, 0.49),
)
def test_robust_results_stay_within_coordinate_range(
    columns: list[list[float]], beta: float
) -> None:
    updates = [{"w": torch.tensor(col, dtype=torch.float32)} for col in columns]
    stacked = torch.stack([u["w"] for u in updates])
    low, high = stacked.min(dim=0).values - 1e-3, stacked.max(dim=0).values + 1e-3

    for out in (coordinate_median(updates), trimmed_mean(updates, beta), krum(updates, f=1)):
        assert bool(((out["w"] >= low) & (out["w"] <= high)).all())
