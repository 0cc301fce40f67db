"""What an audit found: per attack and comparison, the separation with its intervals.

Two comparisons, each against the same non-members (consented held-out patients):

    members-vs-nonmembers     does the model tell its consented training patients apart?
    withdrawn-vs-nonmembers   does it still remember the patients who withdrew?

A comparison whose groups are smaller than ``AuditOptions.min_patients`` is reported as
skipped, with the reason, rather than as a number nobody should trust.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from node.privacy_audit import metrics
from node.privacy_audit.attacks import AuditOptions, PatientScores

__all__ = ["COMPARISONS", "AttackResult", "AuditReport", "compare"]

COMPARISONS = {
    "members-vs-nonmembers": ("members", "nonmembers"),
    "withdrawn-vs-nonmembers": ("withdrawn", "nonmembers"),
}


@dataclass(frozen=True)
class AttackResult:
    attack: str
    comparison: str
    separation: metrics.Separation | None
    """None when skipped."""
    roc: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    """(fpr, tpr) points of the observed ROC curve (for the plot)."""
    skipped: str = ""

    def to_json(self) -> dict[str, Any]:
        sep = self.separation
        body: dict[str, Any] = {"attack": self.attack, "comparison": self.comparison,
                                "skipped": self.skipped or None}
        if sep is None:
            return body
        return {
            **body,
            "positives": sep.positives,
            "negatives": sep.negatives,
            "auc": asdict(sep.auc),
            "advantage": asdict(sep.advantage),
            "tpr_at_low_fpr": asdict(sep.tpr_at_low_fpr),
            "low_fpr": sep.low_fpr,
            "low_fpr_resolved": sep.fpr_resolved,
        }


@dataclass(frozen=True)
class AuditReport:
    """One `privacy audit` run on one peer's checkpoint."""

    checkpoint: str
    data_dir: str
    round: int
    members: int
    nonmembers: int
    withdrawn: int
    options: AuditOptions
    results: tuple[AttackResult, ...]

    def result(self, attack: str, comparison: str) -> AttackResult:
        return next(r for r in self.results if r.attack == attack and r.comparison == comparison)

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "data_dir": self.data_dir,
            "round": self.round,
            "patients": {"members": self.members, "nonmembers": self.nonmembers, "withdrawn": self.withdrawn},
            "reference_models": self.options.reference_models,
            "reference_steps": self.options.reference_steps,
            "bootstrap": self.options.bootstrap,
            "confidence_level": 0.95,
            "results": [r.to_json() for r in self.results],
        }


def compare(scores: PatientScores, options: AuditOptions) -> tuple[AttackResult, ...]:
    """Every attack x comparison, with bootstrap intervals (or the reason it is skipped)."""
    results = []
    for attack in scores.scores:
        for name, (positive, negative) in COMPARISONS.items():
            pos, neg = scores.of(attack, positive), scores.of(attack, negative)
            if min(len(pos), len(neg)) < options.min_patients:
                why = (f"needs at least {options.min_patients} {positive} and {options.min_patients} "
                       f"{negative} patients, has {len(pos)} and {len(neg)}")
                results.append(AttackResult(attack, name, None, skipped=why))
                continue
            sep = metrics.separation(pos, neg, resamples=options.bootstrap, seed=options.seed)
            fpr, tpr = metrics.roc_curve(pos, neg)
            results.append(AttackResult(attack, name, sep, (tuple(fpr.tolist()), tuple(tpr.tolist()))))
    return tuple(results)
