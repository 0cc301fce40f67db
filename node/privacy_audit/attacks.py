"""The two attacks, as per-patient scores (torch in memory; no file, no network).

- ``loss``: a patient's score is minus the mean cross-entropy of the audited model over
  the patient's images (members were fitted, so their loss is lower).
- ``lira-offline``: K reference models start from the genesis model and train, with
  the peer's own trainer and settings (learning rate, batch size, DP), on random halves
  of the consented local patients (``metrics.reference_halves``). A patient's score is
  its mean logit-scaled confidence under the audited model, standardised against the
  same statistic under the reference models that did *not* train on it
  (``metrics.lira_offline``). Withdrawn patients are never trained on, not even here:
  they are OUT of every reference model.

Who is who (``patient_groups``) is read from the peer's own split: ``LocalTrainer``
holds out a ``holdout_fraction`` of the *subjects* (seeded by the peer's ``seed``), so a
patient's images are all on one side. Members are the consented subjects of the
training split, non-members the consented held-out subjects, withdrawn the withdrawn
subjects of the training split (a withdrawn held-out subject was never trained on and
is left out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from node.data import ImageSet
from node.learner import LearnerSettings
from node.models import build_model
from node.privacy_audit import metrics
from node.privacy_audit.errors import PrivacyAuditError
from node.trainer import ImageSetLike, LocalTrainer

__all__ = ["ATTACKS", "AuditOptions", "PatientGroups", "PatientScores", "patient_groups", "score_patients"]

ATTACKS = ("loss", "lira-offline")
_CHUNK = 512


@dataclass(frozen=True)
class AuditOptions:
    """How hard to look: reference models, their training steps, bootstrap resamples."""

    reference_models: int = 4
    reference_steps: int = 0
    """local steps of each reference model (0: as many as the audited peer took, see
    `node.privacy_audit.run`)."""
    bootstrap: int = 1000
    seed: int = 0
    min_patients: int = 5
    """fewest patients in a group for its comparison to be measured."""

    def __post_init__(self) -> None:
        if self.reference_models == 1 or self.reference_models < 0:
            raise PrivacyAuditError(
                f"--reference-models must be 0 (loss attack only) or at least 2, not {self.reference_models}: "
                "each patient must be left out of at least one reference model")
        if self.reference_steps < 0 or self.bootstrap < 100 or self.min_patients < 2:
            raise PrivacyAuditError(
                f"need --reference-steps >= 0 and --bootstrap >= 100 (got {self.reference_steps}, {self.bootstrap})")


@dataclass(frozen=True)
class PatientGroups:
    """Subject commitments, sorted, per group."""

    members: tuple[bytes, ...]
    nonmembers: tuple[bytes, ...]
    withdrawn: tuple[bytes, ...]

    @property
    def consented(self) -> tuple[bytes, ...]:
        return self.members + self.nonmembers

    @property
    def everyone(self) -> tuple[bytes, ...]:
        return self.members + self.nonmembers + self.withdrawn


@dataclass(frozen=True)
class PatientScores:
    """Per attack, one score per patient of `groups.everyone` (higher: member)."""

    groups: PatientGroups
    scores: Mapping[str, np.ndarray]

    def of(self, attack: str, group: str) -> np.ndarray:
        everyone = self.groups.everyone
        wanted = set(getattr(self.groups, group))
        return self.scores[attack][[i for i, p in enumerate(everyone) if p in wanted]]


def _model(settings: LearnerSettings) -> nn.Module:
    return build_model(settings.model, num_classes=settings.num_classes, in_size=settings.image_size,
                       seed=settings.genesis_seed)


def patient_groups(images: ImageSetLike, settings: LearnerSettings, withdrawn: Sequence[bytes]) -> PatientGroups:
    """Members, non-members and withdrawn patients, from the peer's own by-subject split."""
    split = LocalTrainer(_model(settings), images, seed=settings.seed, batch_size=settings.batch_size,
                         lr=settings.lr, holdout_fraction=settings.holdout_fraction)
    trained = set(split.train_subjects)
    gone = set(withdrawn)
    everyone = set(images.subjects)
    return PatientGroups(
        members=tuple(sorted(trained - gone)),
        nonmembers=tuple(sorted(everyone - trained - gone)),
        withdrawn=tuple(sorted(trained & gone)),
    )


def _subset(images: ImageSetLike, patients: Sequence[bytes]) -> ImageSet:
    wanted = set(patients)
    keep = np.array([s in wanted for s in images.subjects], dtype=bool)
    return ImageSet(images=np.ascontiguousarray(images.images[keep]), labels=np.asarray(images.labels)[keep],
                    subjects=tuple(s for s, k in zip(images.subjects, keep) if k))


@torch.no_grad()
def _confidence_and_loss(model: nn.Module, images: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    x = torch.as_tensor(images.images, dtype=torch.float32)
    logits = np.concatenate([model(x[i : i + _CHUNK]).double().numpy() for i in range(0, len(x), _CHUNK)])
    loss, confidence = metrics.image_statistics(logits, images.labels)
    return confidence, loss


def _load(settings: LearnerSettings, state: Mapping[str, Tensor]) -> nn.Module:
    model = _model(settings)
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:160]
        raise PrivacyAuditError(
            f"the checkpoint's model does not fit {settings.model} ({settings.image_size}px, "
            f"{settings.num_classes} classes) of the config: is --config this peer's? ({first})"
        ) from exc
    return model


def _reference(settings: LearnerSettings, images: ImageSet, steps: int, seed: int) -> nn.Module:
    """A model trained from the genesis the way the peer trains, on `images` only."""
    model = _model(settings)
    trainer = LocalTrainer(model, images, seed=seed, lr=settings.lr, batch_size=settings.batch_size,
                           holdout_fraction=0.0, dp=settings.dp)
    trainer.train(steps)
    return model


def score_patients(
    target: Mapping[str, Tensor],
    images: ImageSetLike,
    groups: PatientGroups,
    settings: LearnerSettings,
    options: AuditOptions,
) -> PatientScores:
    """Each attack's score for every patient of `groups` (see the module docstring)."""
    everyone = groups.everyone
    audited = _subset(images, everyone)
    confidence, loss = _confidence_and_loss(_load(settings, target), audited)
    scores = {"loss": -metrics.patient_means(loss, audited.subjects, everyone)}
    k = options.reference_models
    if k and options.reference_steps < 1:
        raise PrivacyAuditError("reference models need at least one training step")
    if k:
        target_stat = metrics.patient_means(confidence, audited.subjects, everyone)
        consented = groups.consented
        halves = metrics.reference_halves(len(consented), k, options.seed)
        reference = np.empty((k, len(everyone)))
        for j in range(k):
            chosen = [p for p, take in zip(consented, halves[j]) if take]
            model = _reference(settings, _subset(images, chosen), options.reference_steps,
                               seed=options.seed * 7919 + j + 1)
            stat, _ = _confidence_and_loss(model, audited)
            reference[j] = metrics.patient_means(stat, audited.subjects, everyone)
        out = np.ones((k, len(everyone)), dtype=bool)
        out[:, : len(consented)] = ~halves
        scores["lira-offline"] = metrics.lira_offline(target_stat, reference, out)
    return PatientScores(groups, scores)
