"""The audit at a hospital: read the peer's config, checkpoint and data; measure; report.

Everything is read from local files: node.toml (the peer's model, seed, split and
training settings), the checkpoint folder (the model of the last completed round, and
the withdrawn subjects in node.json) and the ingested data folder (manifest.json and its
images). Nothing is sent anywhere: no chain, no network, no peer is contacted.

``measure`` is the same audit on a model and images already in memory (tests, benches).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from torch import Tensor

from node.config import NodeConfig
from node.learner import LearnerSettings
from node.privacy_audit.attacks import AuditOptions, PatientGroups, patient_groups, score_patients
from node.privacy_audit.errors import PrivacyAuditError
from node.privacy_audit.report import AttackResult, AuditReport, compare
from node.trainer import ImageSetLike

__all__ = ["REFERENCE_STEPS_CAP", "measure", "run_audit"]

REFERENCE_STEPS_CAP = 1000
"""By default a reference model takes as many local steps as the audited peer (rounds x
local_steps), at most this many: the audit stays a matter of seconds."""


def measure(
    target: Mapping[str, Tensor],
    images: ImageSetLike,
    settings: LearnerSettings,
    withdrawn: Sequence[bytes],
    options: AuditOptions,
) -> tuple[PatientGroups, tuple[AttackResult, ...]]:
    """Who is a member (the peer's own split), each attack's scores, and the separations."""
    groups = patient_groups(images, settings, withdrawn)
    need = options.min_patients
    if len(groups.members) < need or len(groups.nonmembers) < need:
        raise PrivacyAuditError(
            f"too few patients for a membership audit: {len(groups.members)} members (training split) and "
            f"{len(groups.nonmembers)} non-members (held out, holdout_fraction={settings.holdout_fraction:g}); "
            f"each group needs at least {need} patients"
        )
    return groups, compare(score_patients(target, images, groups, settings, options), options)


def _withdrawn(raw: Sequence[str], where: Path) -> list[bytes]:
    try:
        return [bytes.fromhex(h.removeprefix("0x")) for h in raw]
    except ValueError as exc:
        raise PrivacyAuditError(f"{where / 'node.json'}: a withdrawn subject is not hex ({exc})") from exc


def run_audit(config: NodeConfig, checkpoint_dir: Path | None = None,
              options: AuditOptions | None = None) -> AuditReport:
    """Audit the model of the peer's last completed round on its own patients."""
    from node.checkpoint import CheckpointStore
    from node.data import load_image_set
    from node.peer import learner_settings

    options = options or AuditOptions()
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else config.checkpoint_dir
    store = CheckpointStore(folder)
    if not store.exists():
        raise PrivacyAuditError(f"no checkpoint in {folder} (no node.json): run the peer first, or give --checkpoint-dir")
    state = store.load_state()
    if state.round < 1:
        raise PrivacyAuditError(f"the checkpoint in {folder} has no completed round yet: there is no model to audit")
    target, _ = store.load_tensors("round", state.round)
    images = load_image_set(config.data_dir, size=config.image_size)
    if len(images) == 0:
        raise PrivacyAuditError(f"no images in {config.data_dir}: ingest the hospital's data first (medgossip data ingest)")
    steps = options.reference_steps or min(state.round * config.local_steps, REFERENCE_STEPS_CAP)
    options = replace(options, reference_steps=steps)
    groups, results = measure(target, images, learner_settings(config), _withdrawn(state.withdrawn, folder), options)
    return AuditReport(
        checkpoint=str(folder), data_dir=str(config.data_dir), round=state.round,
        members=len(groups.members), nonmembers=len(groups.nonmembers), withdrawn=len(groups.withdrawn),
        options=options, results=results,
    )
