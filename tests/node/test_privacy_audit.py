"""`privacy audit` with real torch training: it detects membership in an overfit model,
not in a model that never saw the patients; and the command on a real checkpoint and a
real ingested data folder, with --json, --plot and one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from node.checkpoint import CheckpointStore, NodeState
from node.config import NodeConfig, load_config, to_toml
from node.data import ImageSet, load_image_set
from node.learner import Learner, LearnerSettings
from node.models import build_model
from node.privacy_audit import AuditOptions, measure
from node.trainer import LocalTrainer
from tests.cli_helpers import call, one_clear_line
from tests.node.learning_data import digits_image_set

SETTINGS = LearnerSettings(seed=1, holdout_fraction=0.5)
OPTIONS = AuditOptions(reference_models=4, reference_steps=150, bootstrap=300)


def hospital() -> ImageSet:
    """60 synthetic patients of 5 digits each: 30 trained on, 30 held out."""
    d = digits_image_set(300, n_subjects=60)
    return ImageSet(d.images, d.labels, d.subjects)


def trained(images: ImageSet, steps: int, seed: int) -> dict[str, torch.Tensor]:
    trainer = LocalTrainer(build_model(seed=SETTINGS.genesis_seed), images, seed=seed, lr=SETTINGS.lr,
                           batch_size=SETTINGS.batch_size, holdout_fraction=SETTINGS.holdout_fraction)
    trainer.train(steps)
    return trainer.state_dict()


def test_detects_members_and_withdrawn_patients_of_an_overfit_model() -> None:
    images = hospital()
    target = trained(images, steps=300, seed=SETTINGS.seed)  # the peer's own split: 30 patients, ~60 epochs
    split = LocalTrainer(build_model(), images, seed=SETTINGS.seed, holdout_fraction=0.5)
    withdrawn = split.train_subjects[:6]  # withdrawn after training: still in the model

    groups, results = measure(target, images, SETTINGS, withdrawn, OPTIONS)

    assert (len(groups.members), len(groups.nonmembers), len(groups.withdrawn)) == (24, 30, 6)
    assert not set(groups.members) & set(groups.nonmembers)
    by = {(r.attack, r.comparison): r.separation for r in results}
    for attack in ("loss", "lira-offline"):
        members = by[(attack, "members-vs-nonmembers")]
        assert members is not None and members.auc.value >= 0.7 and members.auc.low > 0.5, (attack, members)
        assert members.advantage.value > 0.3
        gone = by[(attack, "withdrawn-vs-nonmembers")]
        assert gone is not None and gone.auc.value >= 0.7, (attack, gone)


def test_does_not_detect_patients_a_model_never_saw() -> None:
    images = hospital()
    d = digits_image_set(None, n_subjects=600)
    elsewhere = ImageSet(d.images[1000:1500], d.labels[1000:1500], d.subjects[1000:1500])
    target = trained(elsewhere, steps=300, seed=2)  # other patients entirely, as well trained
    split = LocalTrainer(build_model(), images, seed=SETTINGS.seed, holdout_fraction=0.5)

    _, results = measure(target, images, SETTINGS, split.train_subjects[:6], OPTIONS)

    for r in results:
        assert r.separation is not None
        assert r.separation.auc.contains(0.5), (r.attack, r.comparison, r.separation.auc)


# --- the command, on a real checkpoint and a real ingested data folder -----------------


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """make-demo + ingest for one hospital; a Learner trains 4 rounds as the peer does and
    CheckpointStore keeps them; 5 training patients then withdraw. Returns node.toml."""
    from node.data.demo_corpus import make_demo
    from node.data.ingest import ingest
    from node.peer import learner_settings

    root = tmp_path_factory.mktemp("privacy-peer")
    corpus = make_demo(root / "corpus", 1, seed=3, max_images=300)
    ingest(corpus.hospitals[0], corpus.labels_csv, root / "data")
    path = root / "node.toml"
    path.write_text(to_toml(NodeConfig(data_dir=Path("data"), checkpoint_dir=Path("checkpoint"),
                                       holdout_fraction=0.5, local_steps=40)))
    cfg = load_config(path)
    learner = Learner(learner_settings(cfg), load_image_set(cfg.data_dir, size=cfg.image_size))
    learner.author = "0x" + "11" * 20
    store = CheckpointStore(cfg.checkpoint_dir)
    for round_ in range(1, 5):
        contribution = learner.train_round(round_, frozenset())
        learner.merge(contribution.sample_count, [])
        store.save_tensors("round", round_, learner.state())
    withdrawn = ["0x" + s.hex() for s in learner.trainer.train_subjects[:5]]
    store.save_state(NodeState(round=4, withdrawn=withdrawn))
    return path


def test_cli_json_and_plot_on_a_real_checkpoint(peer: Path, tmp_path: Path) -> None:
    png = tmp_path / "roc.png"

    result = call("privacy", "audit", "--config", str(peer), "--reference-models", "2", "--bootstrap", "200",
                  "--json", "--plot", str(png))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["round"] == 4 and report["reference_steps"] == 160  # 4 rounds x 40 local steps
    patients = report["patients"]
    assert patients["withdrawn"] == 5 and patients["members"] >= 5 and patients["nonmembers"] >= 5
    assert {(r["attack"], r["comparison"]) for r in report["results"]} == {
        (a, c) for a in ("loss", "lira-offline") for c in ("members-vs-nonmembers", "withdrawn-vs-nonmembers")}
    for r in report["results"]:
        for key in ("auc", "advantage", "tpr_at_low_fpr"):
            assert r[key]["low"] <= r[key]["value"] <= r[key]["high"]
        assert r["low_fpr_resolved"] is False  # ~20 non-members: TPR at FPR 0, flagged
    from PIL import Image

    with Image.open(png) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 500


def test_cli_table_for_humans(peer: Path) -> None:
    result = call("privacy", "audit", "--config", str(peer), "--reference-models", "0", "--bootstrap", "100")

    assert result.returncode == 0, result.stderr
    assert "members" in result.stdout and "AUC" in result.stdout and "95% bootstrap interval" in result.stdout
    assert "measured, not proven" in result.stdout and "lira-offline" not in result.stdout


def test_cli_bad_inputs_are_one_clear_line(peer: Path, tmp_path: Path) -> None:
    cfg = load_config(peer)
    few = tmp_path / "few.toml"
    few.write_text(to_toml(replace(cfg, holdout_fraction=0.05)))
    empty = tmp_path / "no-data"
    empty.mkdir()
    base = ("privacy", "audit", "--reference-models", "0", "--bootstrap", "100")

    one_clear_line(call(*base, "--config", str(peer), "--checkpoint-dir", str(tmp_path / "none")),
                   "no checkpoint in", "--checkpoint-dir")
    one_clear_line(call(*base, "--config", str(few)), "too few patients", "at least 5")
    nodata = tmp_path / "nodata.toml"
    nodata.write_text(to_toml(replace(cfg, data_dir=empty)))
    one_clear_line(call(*base, "--config", str(nodata)), "no manifest.json", "data ingest")
    one_clear_line(call("privacy", "audit", "--config", str(peer), "--reference-models", "1"),
                   "--reference-models must be 0", "at least 2")
    one_clear_line(call(*base, "--config", str(peer), "--plot", str(tmp_path / "roc.txt")), ".png")
    one_clear_line(call(*base, "--config", str(tmp_path / "missing.toml")), "does not exist")
    other_model = tmp_path / "resnet.toml"
    other_model.write_text(to_toml(replace(cfg, model="resnet18")))
    one_clear_line(call(*base, "--config", str(other_model)), "does not fit resnet18")
