"""LocalTrainer: determinism, subject-level holdout, consent withdrawal, learning."""

from __future__ import annotations

import pytest

from node.errors import NoTrainingData
from node.models import build_model, state_hash
from node.privacy import DPConfig
from node.trainer import BatchInfo, LocalTrainer
from tests.node.learning_data import digits_image_set, subject


def _trainer(seed: int = 1, **kwargs) -> LocalTrainer:  # type: ignore[no-untyped-def]
    kwargs.setdefault("lr", 0.1)
    return LocalTrainer(build_model(seed=0), digits_image_set(), seed=seed, **kwargs)


def test_training_is_deterministic_under_a_seed() -> None:
    a, b, c = _trainer(seed=1), _trainer(seed=1), _trainer(seed=2)

    for _ in range(2):
        ra, rb = a.train(15), b.train(15)
        c.train(15)

    assert state_hash(a.state_dict()) == state_hash(b.state_dict())
    assert state_hash(a.state_dict()) != state_hash(c.state_dict())
    assert ra == rb


def test_holdout_is_split_by_subject_and_deterministic() -> None:
    a, b = _trainer(seed=3, holdout_fraction=0.25), _trainer(seed=3, holdout_fraction=0.25)
    images = digits_image_set()
    train = {images.subjects[i] for i in a._train_idx}
    held = {images.subjects[i] for i in a._holdout_idx}

    assert train and held and not (train & held)
    assert len(held) == 30  # 25% of 120 subjects
    assert a.train_size + a.holdout_size == len(images.labels)
    assert (a._holdout_idx == b._holdout_idx).all()


@pytest.mark.parametrize("dp", [None, DPConfig(1.0, 1.0, noise_seed=0)], ids=["sgd", "dp-sgd"])
def test_withdrawn_images_never_reach_a_batch_after_withdrawal(dp: DPConfig | None) -> None:
    batches: list[BatchInfo] = []
    trainer = _trainer(seed=4, dp=dp, on_batch=batches.append)
    gone = set(trainer.train_subjects[:5])
    trainer.train(10)
    seen_before = {s for b in batches for s in b.subjects}
    assert seen_before & gone  # they were being used before withdrawal

    batches.clear()
    report = trainer.train(40, withdrawn=gone)

    after = {s for b in batches for s in b.subjects}
    assert after and not (after & gone)
    assert not (set(report.subjects_used) & gone)
    assert not (set(trainer.train_subjects) & gone)
    images = digits_image_set()
    assert not any(images.subjects[i] in gone for i in trainer._holdout_idx)
    assert trainer.withdrawn == frozenset(gone)


def test_report_counts_distinct_samples_and_subjects() -> None:
    batches: list[BatchInfo] = []
    trainer = _trainer(seed=5, on_batch=batches.append, batch_size=16)

    report = trainer.train(6)

    indices = {i for b in batches for i in b.indices}
    assert report.steps == 6
    assert report.sample_count == len(indices) <= 6 * 16
    assert report.subjects_used == tuple(sorted({s for b in batches for s in b.subjects}))
    assert report.epsilon_round == report.epsilon_total == 0.0


def test_accuracy_improves_on_digits() -> None:
    trainer = _trainer(seed=6, momentum=0.9, lr=0.05)
    before = trainer.evaluate()

    trainer.train(150)
    after = trainer.evaluate()

    assert before < 0.3
    assert after > 0.85
    assert trainer.evaluate(digits_image_set()) > 0.85


def test_everything_withdrawn_raises_no_training_data() -> None:
    trainer = LocalTrainer(build_model(seed=0), digits_image_set(n=40, n_subjects=4), seed=0)

    with pytest.raises(NoTrainingData):
        trainer.train(1, withdrawn={subject(i) for i in range(4)})


def test_dp_trainer_exposes_the_plain_state_dict() -> None:
    trainer = _trainer(dp=DPConfig(1.0, 1.0, noise_seed=0))
    plain_keys = set(build_model(seed=0).state_dict())

    trainer.train(2)
    state = trainer.state_dict()

    assert set(state) == plain_keys
    trainer.load_state_dict(build_model(seed=0).state_dict())
    assert state_hash(trainer.state_dict()) == state_hash(build_model(seed=0).state_dict())


def test_empty_poisson_batches_still_step_and_are_accounted() -> None:
    # 2 training images, expected batch 1 -> rate 0.5: about 1 in 4 batches is empty.
    batches: list[BatchInfo] = []
    images = digits_image_set(n=3, n_subjects=3)
    trainer = LocalTrainer(
        build_model(seed=0), images, seed=0, batch_size=1, holdout_fraction=0.3,
        dp=DPConfig(1.0, 1.0, noise_seed=0), on_batch=batches.append,
    )
    before = state_hash(trainer.state_dict())

    report = trainer.train(20)

    assert any(len(b.indices) == 0 for b in batches)
    assert trainer.accountant is not None and trainer.accountant.steps == 20
    assert report.epsilon_total > 0
    assert state_hash(trainer.state_dict()) != before


def test_a_withdrawal_during_a_round_applies_at_the_next_step() -> None:
    """The peer's consent watcher calls exclude() from another thread while train() runs."""
    batches: list[BatchInfo] = []
    trainer = _trainer(seed=5)
    gone = set(trainer.train_subjects[:40])

    def on_batch(info: BatchInfo) -> None:
        batches.append(info)
        if info.step == 4:
            trainer.exclude(gone)  # between step 4 and step 5 of this round

    trainer.on_batch = on_batch
    trainer.train(30)

    assert any(set(b.subjects) & gone for b in batches[:5])  # in use before
    assert all(not (set(b.subjects) & gone) for b in batches[5:])  # never after
