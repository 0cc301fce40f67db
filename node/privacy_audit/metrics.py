"""Membership-inference statistics: pure numpy, no I/O, no torch.

Scores are "higher = more likely a member"; a patient is called a member when its score
is at or above a threshold. From the scores of positives (members, or withdrawn
patients) and negatives (held-out non-members):

- ``roc_curve``: every (FPR, TPR) point, ties grouped, from (0, 0) to (1, 1);
- AUC: the trapezoid area under it (equal to the Mann-Whitney statistic with ties
  counted one half, as ``sklearn.metrics.roc_auc_score``);
- advantage: max(TPR - FPR) over the thresholds (0 for a useless attack);
- TPR at FPR <= 1%: the best TPR among thresholds whose empirical FPR is at most 1%.
  With fewer than 100 negatives no threshold has an FPR strictly between 0 and 1%, so
  it is the TPR at FPR 0 (``Separation.fpr_resolved`` says which);
- ``separation``: all three, each with a percentile bootstrap 95% interval that
  resamples patients (with replacement, positives and negatives separately).

LiRA-style calibration (Carlini et al. 2022, the offline variant): each patient's
statistic under the target model is standardised against the same statistic under
reference models that did *not* train on that patient (``lira_offline``); the
statistic is the patient's mean logit-scaled confidence of the true label
(``image_statistics``), which is close to Gaussian across models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from node.privacy_audit.errors import PrivacyAuditError

__all__ = [
    "LOW_FPR",
    "PER_PATIENT_VARIANCE_FROM",
    "Estimate",
    "Separation",
    "advantage",
    "auc",
    "image_statistics",
    "lira_offline",
    "patient_means",
    "reference_halves",
    "roc_curve",
    "separation",
    "tpr_at_fpr",
]

LOW_FPR = 0.01
PER_PATIENT_VARIANCE_FROM = 8
"""A patient's own OUT variance is used from this many OUT references on; below it, the
variance pooled over all patients (LiRA's "fixed variance", better with few models)."""
_EPS = 1e-12


@dataclass(frozen=True)
class Estimate:
    """A statistic on the observed patients, and its bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True)
class Separation:
    """How well one attack's scores tell positives from negatives."""

    positives: int
    negatives: int
    auc: Estimate
    advantage: Estimate
    tpr_at_low_fpr: Estimate
    low_fpr: float = LOW_FPR
    resamples: int = 0

    @property
    def fpr_resolved(self) -> bool:
        """Whether there are enough negatives for an FPR of `low_fpr` to exist."""
        return self.negatives * self.low_fpr >= 1


def _scores(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise PrivacyAuditError(f"no {name} scores: a separation needs at least one of each")
    if not np.all(np.isfinite(array)):
        raise PrivacyAuditError(f"non-finite {name} score (a model that diverged?)")
    return array


def roc_curve(positives: Sequence[float] | np.ndarray, negatives: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, highest first, starting at (0, 0)."""
    pos = np.sort(_scores(positives, "positive"))
    neg = np.sort(_scores(negatives, "negative"))
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = (len(pos) - np.searchsorted(pos, thresholds, side="left")) / len(pos)
    fpr = (len(neg) - np.searchsorted(neg, thresholds, side="left")) / len(neg)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def _auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    return float(tpr[fpr <= max_fpr + _EPS].max())


def auc(positives: Sequence[float] | np.ndarray, negatives: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (0.5: the scores tell nothing)."""
    return _auc(*roc_curve(positives, negatives))


def advantage(positives: Sequence[float] | np.ndarray, negatives: Sequence[float] | np.ndarray) -> float:
    """Max over thresholds of TPR - FPR (the membership advantage)."""
    fpr, tpr = roc_curve(positives, negatives)
    return float(np.max(tpr - fpr))


def tpr_at_fpr(positives: Sequence[float] | np.ndarray, negatives: Sequence[float] | np.ndarray,
               max_fpr: float = LOW_FPR) -> float:
    """The best TPR among thresholds whose empirical FPR is at most `max_fpr`."""
    return _tpr_at(*roc_curve(positives, negatives), max_fpr)


def _three(pos: np.ndarray, neg: np.ndarray, low_fpr: float) -> tuple[float, float, float]:
    fpr, tpr = roc_curve(pos, neg)
    return _auc(fpr, tpr), float(np.max(tpr - fpr)), _tpr_at(fpr, tpr, low_fpr)


def separation(
    positives: Sequence[float] | np.ndarray,
    negatives: Sequence[float] | np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    low_fpr: float = LOW_FPR,
) -> Separation:
    """AUC, advantage and TPR at `low_fpr`, each with a percentile bootstrap interval.

    The unit resampled is the patient: positives and negatives are each drawn with
    replacement to their own size (a stratified bootstrap), `resamples` times.
    """
    pos, neg = _scores(positives, "positive"), _scores(negatives, "negative")
    if resamples < 1 or not 0 < level < 1:
        raise PrivacyAuditError("need at least one bootstrap resample and a level in (0, 1)")
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, 3))
    for b in range(resamples):
        draws[b] = _three(pos[rng.integers(0, len(pos), len(pos))],
                          neg[rng.integers(0, len(neg), len(neg))], low_fpr)
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail], axis=0)
    observed = _three(pos, neg, low_fpr)
    est = [Estimate(observed[i], float(low[i]), float(high[i])) for i in range(3)]
    return Separation(len(pos), len(neg), est[0], est[1], est[2], low_fpr, resamples)


# --- per-image and per-patient statistics ----------------------------------------------


def image_statistics(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: cross-entropy loss, and the logit-scaled confidence of the true label,
    log(p_y / (1 - p_y)), computed stably from the logits."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y):
        raise PrivacyAuditError("logits must be [images, classes] with one label per image")
    rows = np.arange(len(y))
    true = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    loss = logsumexp(z, axis=1) - true
    confidence = true - logsumexp(others, axis=1)
    return loss, confidence


def patient_means(values: np.ndarray, subjects: Sequence[bytes], patients: Sequence[bytes]) -> np.ndarray:
    """The mean of `values` over each patient's images, in the order of `patients`
    (images of other subjects are ignored; a patient without images gets nan)."""
    index = {p: i for i, p in enumerate(patients)}
    codes = np.array([index.get(s, -1) for s in subjects], dtype=np.int64)
    keep = codes >= 0
    values = np.asarray(values, dtype=np.float64)
    sums = np.bincount(codes[keep], weights=values[keep], minlength=len(patients))
    counts = np.bincount(codes[keep], minlength=len(patients))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def reference_halves(patients: int, models: int, seed: int) -> np.ndarray:
    """Which patients each reference model trains on: bool [models, patients].

    Models come in complementary pairs over a random half (2j trains on a half, 2j+1
    on the rest), so with an even count every patient is IN exactly half of them and
    OUT of the other half; an odd last model trains on a fresh random half.
    """
    if patients < 2 or models < 0:
        raise PrivacyAuditError(f"reference halves need at least 2 patients and models >= 0, got {patients} and {models}")
    rng = np.random.default_rng(seed)
    masks = np.zeros((models, patients), dtype=bool)
    for j in range(0, models, 2):
        half = np.zeros(patients, dtype=bool)
        half[rng.permutation(patients)[: patients // 2]] = True
        masks[j] = half
        if j + 1 < models:
            masks[j + 1] = ~half
    return masks


def lira_offline(target: np.ndarray, reference: np.ndarray, out: np.ndarray,
                 per_patient_from: int = PER_PATIENT_VARIANCE_FROM) -> np.ndarray:
    """Per patient: (target - mean_OUT) / sigma_OUT, the offline LiRA test statistic.

    `target` [P] is each patient's statistic under the audited model, `reference`
    [K, P] under each reference model, `out[k, p]` whether model k did not train on
    patient p. Larger means the audited model fits the patient better than models that
    never saw them: evidence of membership.
    """
    target = np.asarray(target, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    out = np.asarray(out, dtype=bool)
    if reference.shape != out.shape or reference.ndim != 2 or reference.shape[1] != len(target):
        raise PrivacyAuditError("reference statistics must be [models, patients] like the OUT mask")
    counts = out.sum(axis=0)
    if np.any(counts == 0):
        raise PrivacyAuditError("every patient must be out of at least one reference model")
    masked = np.where(out, reference, np.nan)
    mean = np.nanmean(masked, axis=0)
    residuals = (masked - mean)[out]
    dof = int(out.sum()) - len(target)
    if dof > 0:
        pooled = float(np.sqrt(np.sum(residuals**2) / dof))
    else:  # one OUT model per patient: a global scale (the ranking does not depend on it)
        pooled = float(np.std(mean)) if len(target) > 1 else 1.0
    sigma = np.full(len(target), max(pooled, 1e-6))
    own = counts >= max(per_patient_from, 2)
    if np.any(own):
        sigma[own] = np.maximum(np.nanstd(masked[:, own], axis=0, ddof=1), 1e-6)
    return (target - mean) / sigma
