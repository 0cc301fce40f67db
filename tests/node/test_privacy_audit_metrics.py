"""node.privacy_audit.metrics: the pure math, against sklearn and cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from node.privacy_audit import PrivacyAuditError
from node.privacy_audit.metrics import (
    advantage,
    auc,
    image_statistics,
    lira_offline,
    patient_means,
    reference_halves,
    roc_curve,
    separation,
    tpr_at_fpr,
)


@pytest.mark.parametrize("seed", range(6))
def test_auc_and_roc_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pos = np.round(rng.normal(0.6, 1.0, 37), 1)  # rounded: many ties, within and across groups
    neg = np.round(rng.normal(0.0, 1.0, 23), 1)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    scores = np.r_[pos, neg]

    fpr, tpr = roc_curve(pos, neg)
    sk_fpr, sk_tpr, _ = sk_roc_curve(y, scores, drop_intermediate=False)

    assert auc(pos, neg) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert advantage(pos, neg) == pytest.approx(float(np.max(sk_tpr - sk_fpr)))


def test_hand_cases() -> None:
    # Perfect separation, its mirror, and no information at all.
    assert (auc([3, 4], [1, 2]), advantage([3, 4], [1, 2]), tpr_at_fpr([3, 4], [1, 2])) == (1.0, 1.0, 1.0)
    assert (auc([1, 2], [3, 4]), advantage([1, 2], [3, 4]), tpr_at_fpr([1, 2], [3, 4])) == (0.0, 0.0, 0.0)
    assert (auc([5, 5], [5, 5, 5]), advantage([5, 5], [5, 5, 5])) == (0.5, 0.0)
    # pos {4, 2}, neg {3, 1}: pairs (4>3, 4>1, 2<3, 2>1) -> AUC 3/4; at threshold 4:
    # TPR 1/2, FPR 0 -> advantage 1/2 and TPR at FPR 0 is 1/2.
    assert auc([4, 2], [3, 1]) == 0.75
    assert advantage([4, 2], [3, 1]) == 0.5
    assert tpr_at_fpr([4, 2], [3, 1], max_fpr=0.0) == 0.5
    fpr, tpr = roc_curve([4, 2], [3, 1])
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]


def test_tpr_at_one_percent_needs_a_hundred_negatives_to_differ_from_fpr_zero() -> None:
    pos = np.arange(100, 200, dtype=float)
    neg = np.r_[np.arange(0, 99, dtype=float), 150.5]  # 100 negatives, one among the positives

    # 100 negatives: one false positive is FPR 1%, allowed -> TPR counts every positive above 1.
    assert tpr_at_fpr(pos, neg) == pytest.approx(1.0)
    assert tpr_at_fpr(pos, neg, max_fpr=0.0) == pytest.approx(49 / 100)
    assert separation(pos, neg, resamples=100).fpr_resolved
    assert not separation(pos, neg[:50], resamples=100).fpr_resolved


def test_bootstrap_interval_is_deterministic_contains_the_value_and_narrows_with_patients() -> None:
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1, 1, 15), rng.normal(0, 1, 15)
    small = separation(pos, neg, resamples=400, seed=3)
    again = separation(pos.copy(), neg.copy(), resamples=400, seed=3)
    big = separation(rng.normal(1, 1, 600), rng.normal(0, 1, 600), resamples=400, seed=3)

    for sep in (small, big):
        for est in (sep.auc, sep.advantage, sep.tpr_at_low_fpr):
            assert est.low <= est.value <= est.high
    assert again == small
    assert big.auc.high - big.auc.low < (small.auc.high - small.auc.low) / 3
    assert big.auc.contains(0.76)  # P(N(1,1) > N(0,1)) = Phi(1/sqrt(2)) = 0.760
    assert not big.auc.contains(0.5)


def test_intervals_cover_one_half_about_95_percent_of_the_time_when_nothing_leaks() -> None:
    rng = np.random.default_rng(7)
    aucs = [separation(*rng.normal(0, 1, (2, 30)), resamples=300, seed=s).auc for s in range(60)]

    assert 0.85 <= np.mean([a.contains(0.5) for a in aucs]) < 1.0
    # Under no leak, AUC's standard error is sqrt((n1 + n2 + 1) / (12 n1 n2)) = 0.075: width ~0.29.
    assert 0.25 < np.mean([a.high - a.low for a in aucs]) < 0.34


def test_image_statistics_are_loss_and_logit_confidence() -> None:
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 2])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    loss, confidence = image_statistics(logits, labels)

    np.testing.assert_allclose(loss, -np.log(p[[0, 1], labels]))
    np.testing.assert_allclose(confidence, np.log(p[[0, 1], labels] / (1 - p[[0, 1], labels])))
    assert np.all(np.isfinite(image_statistics(np.array([[300.0, -300.0]]), np.array([0]))[1]))


def test_patient_means_follow_the_patient_order() -> None:
    values = np.array([1.0, 3.0, 10.0, 5.0, 99.0])
    subjects = [b"a", b"a", b"b", b"a", b"z"]  # z: not audited, ignored

    np.testing.assert_allclose(patient_means(values, subjects, [b"b", b"a"]), [10.0, 3.0])


def test_reference_halves_leave_every_patient_out_of_half_the_models() -> None:
    masks = reference_halves(11, 6, seed=0)

    assert masks.shape == (6, 11)
    assert (masks.sum(axis=0) == 3).all()  # complementary pairs: IN 3 times, OUT 3 times
    assert (masks[0] == ~masks[1]).all() and masks[0].sum() == 5


def test_lira_offline_standardises_against_out_models_only() -> None:
    target = np.array([2.0, 0.0])
    reference = np.array([[1.0, 9.0],    # model 0: trained on patient 1 (ignored for it)
                          [0.0, -1.0],
                          [9.0, 1.0]])   # model 2: trained on patient 0 (ignored for it)
    out = np.array([[True, False], [True, True], [False, True]])

    z = lira_offline(target, reference, out)

    # OUT means: patient 0 -> 0.5, patient 1 -> 0.0; pooled sigma over the residuals
    # (+-0.5, +-1.0) with 4 - 2 degrees of freedom: sqrt((0.25*2 + 1*2) / 2).
    sigma = np.sqrt(2.5 / 2)
    np.testing.assert_allclose(z, [(2.0 - 0.5) / sigma, 0.0])
    with pytest.raises(PrivacyAuditError, match="out of at least one"):
        lira_offline(target, reference, np.array([[True, False]] * 3))


def test_empty_or_non_finite_scores_are_refused() -> None:
    with pytest.raises(PrivacyAuditError, match="no positive"):
        auc([], [1.0])
    with pytest.raises(PrivacyAuditError, match="non-finite"):
        auc([np.nan], [1.0])
