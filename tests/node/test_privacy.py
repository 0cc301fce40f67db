"""DP-SGD accounting: monotone lifetime epsilon that survives a restart."""

from __future__ import annotations

import json
import math

import pytest
from torch import nn

from node.errors import PrivacyConfigError
from node.models import build_model
from node.privacy import AccountantState, DPConfig, PrivacyAccountant
from node.trainer import LocalTrainer
from tests.node.learning_data import digits_image_set


def _dp_trainer(dp: DPConfig, state: AccountantState | None = None) -> LocalTrainer:
    return LocalTrainer(
        build_model(seed=0), digits_image_set(), seed=1, lr=0.5, dp=dp, accountant_state=state
    )


@pytest.mark.parametrize("mechanism", ["rdp", "prv"])
def test_epsilon_grows_monotonically_and_rounds_add_up(mechanism: str) -> None:
    trainer = _dp_trainer(DPConfig(1.0, 1.0, delta=1e-5, accountant=mechanism, noise_seed=0))  # type: ignore[arg-type]

    reports = [trainer.train(10) for _ in range(3)]

    totals = [r.epsilon_total for r in reports]
    assert 0 < totals[0] < totals[1] < totals[2] < 10
    assert all(r.epsilon_round > 0 for r in reports)
    assert math.isclose(sum(r.epsilon_round for r in reports), totals[-1], rel_tol=1e-9)
    assert trainer.accountant is not None and trainer.accountant.steps == 30


def test_accountant_state_survives_a_json_round_trip_and_a_restart() -> None:
    dp = DPConfig(1.1, 1.0, noise_seed=0)
    straight = _dp_trainer(dp)
    straight.train(8)
    first = _dp_trainer(dp)
    first.train(8)
    assert first.accountant is not None

    saved = json.dumps(first.accountant.state().to_dict())
    restarted = _dp_trainer(dp, AccountantState.from_dict(json.loads(saved)))

    assert restarted.epsilon_total == pytest.approx(first.epsilon_total)
    report = restarted.train(8)
    expected = straight.train(8)
    assert report.epsilon_total == pytest.approx(expected.epsilon_total)
    assert report.epsilon_round == pytest.approx(expected.epsilon_round)
    assert report.epsilon_total > first.epsilon_total


def test_accountant_epsilon_follows_opacus() -> None:
    from opacus.accountants import RDPAccountant

    ours, theirs = PrivacyAccountant("rdp", delta=1e-5), RDPAccountant()
    for _ in range(50):
        ours.step(1.0, 0.02)
        theirs.step(noise_multiplier=1.0, sample_rate=0.02)

    assert PrivacyAccountant("rdp").epsilon() == 0.0
    assert ours.epsilon() == pytest.approx(theirs.get_epsilon(delta=1e-5))
    assert ours.state().history == ((1.0, 0.02, 50),)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"noise_multiplier": -1.0, "max_grad_norm": 1.0},
        {"noise_multiplier": 1.0, "max_grad_norm": 0.0},
        {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1.0},
        {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "accountant": "gdp-ish"},
    ],
)
def test_invalid_dp_config_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(PrivacyConfigError):
        DPConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [{}, {"mechanism": "rdp", "history": [[1.0, 2.0, 3]]}, {"mechanism": "x", "history": []},
     {"mechanism": "rdp", "history": [["a", 0.1, 1]]}],
)
def test_malformed_accountant_state_is_rejected(data: dict[str, object]) -> None:
    with pytest.raises(PrivacyConfigError):
        AccountantState.from_dict(data)


def test_batchnorm_model_is_rejected_for_dp() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 10))

    with pytest.raises(PrivacyConfigError, match="DP-SGD"):
        LocalTrainer(model, digits_image_set(), dp=DPConfig(1.0, 1.0))
