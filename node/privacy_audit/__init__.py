"""Patient-level membership inference, measured at a hospital on its own peer's model.

``medgossip privacy audit`` asks how well an attacker holding the peer's current model
and a patient's images could tell whether that patient was trained on. It compares the
consented patients the peer trained on (members) with its held-out patients
(non-members), and the withdrawn patients with the same non-members. It reports AUC,
advantage (max TPR - FPR) and TPR at 1% FPR, each with a bootstrap 95% interval over
patients. It measures; it proves nothing: a low AUC says these attacks failed, not that
every attack would.

    errors.py   PrivacyAuditError: what stops an audit from running at all
    metrics.py  the pure math (ROC, AUC, advantage, TPR at low FPR, bootstrap, offline LiRA)
    attacks.py  who is a member (the peer's own split) and each attack's per-patient scores
    report.py   the comparisons and what an audit found (AuditReport, its JSON form)
    run.py      run_audit: config + checkpoint + data folder -> AuditReport (local files only)
    plot.py     the ROC curves as a PNG

Library choice. ART (adversarial-robustness-toolbox) offers membership-inference attacks
(black-box attack classifiers, rule-based, label-only, shadow models), but they score
single records and learn an attack model from known members; none aggregates a
patient's images, and none calibrates a target's score against reference models
trained without that record (LiRA). opacus provides DP training and accounting, no
attack. tensorflow-privacy's attacks need TensorFlow; privacy-meter (last released in
2023) brings its own model and dataset wrappers. So the calibrated attack is implemented
here (offline LiRA: some twenty lines in ``metrics.lira_offline``), no dependency is
added, and ``metrics`` is tested against ``sklearn.metrics``.
"""

from __future__ import annotations

from node.privacy_audit.attacks import ATTACKS, AuditOptions, PatientGroups
from node.privacy_audit.errors import PrivacyAuditError
from node.privacy_audit.metrics import Estimate, Separation
from node.privacy_audit.report import COMPARISONS, AttackResult, AuditReport
from node.privacy_audit.run import measure, run_audit

__all__ = [
    "ATTACKS",
    "COMPARISONS",
    "AttackResult",
    "AuditOptions",
    "AuditReport",
    "Estimate",
    "PatientGroups",
    "PrivacyAuditError",
    "Separation",
    "measure",
    "run_audit",
]
