"""make-demo -> ingest -> load_image_set: real DICOM files, correct labels, no PHI."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from node.cli import app
from node.data import LinkageTable, Manifest, load_image_set
from node.data.dataset import preprocess
from node.data.demo_corpus import make_demo
from node.data.ingest import ingest
from tests.node.dicom_phi_scan import find_phi, source_phi

IMAGES = 300


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "corpus"
    runner = CliRunner()
    result = runner.invoke(app, ["data", "make-demo", "--out", str(root), "--hospitals", "3",
                                 "--alpha", "0.3", "--seed", "7", "--images", str(IMAGES)])
    assert result.exit_code == 0, result.output
    return root


def test_demo_corpus_layout_and_determinism(corpus: Path, tmp_path: Path) -> None:
    files = sorted(corpus.rglob("*.dcm"))
    assert len(files) == IMAGES
    assert sorted(p.name for p in corpus.iterdir()) == [
        "hospital-00", "hospital-01", "hospital-02", "labels.csv", "test"]
    with (corpus / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == IMAGES and {r["SOPInstanceUID"] for r in rows} == {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files}
    ds = pydicom.dcmread(files[0])
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.pixel_array.shape == (8, 8)
    assert ds.PatientName and ds.PatientBirthDate and ds.InstitutionName
    # Several images per patient.
    assert len({str(pydicom.dcmread(p, stop_before_pixels=True).PatientID) for p in files}) < IMAGES / 2

    again = make_demo(tmp_path / "again", 3, alpha=0.3, seed=7, max_images=IMAGES)
    assert _digest(again.root) == _digest(corpus)
    other = make_demo(tmp_path / "other", 3, alpha=0.3, seed=8, max_images=IMAGES)
    assert _digest(other.root) != _digest(corpus)


def _label_histograms(corpus: Path) -> dict[str, np.ndarray]:
    with (corpus / "labels.csv").open() as fh:
        label_of = {r["SOPInstanceUID"]: int(r["label"]) for r in csv.DictReader(fh)}
    hist = {}
    for site in ("hospital-00", "hospital-01", "hospital-02", "test"):
        labels = [label_of[str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)]
                  for p in (corpus / site).rglob("*.dcm")]
        hist[site] = np.bincount(labels, minlength=10) / len(labels)
    return hist


def test_split_is_non_iid_and_the_test_set_is_not(corpus: Path) -> None:
    hist = _label_histograms(corpus)
    overall = np.mean([hist[s] for s in hist], axis=0)
    skew = max(np.abs(hist[s] - overall).sum() for s in ("hospital-00", "hospital-01", "hospital-02"))
    assert skew > 0.4  # alpha 0.3: sites see very different label mixes
    assert np.abs(hist["test"] - np.full(10, 0.1)).max() < 0.1  # IID draw


def test_ingest_and_load_round_trip_keeps_labels_and_pixels(corpus: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    out = tmp_path / "data"
    report = ingest(corpus / "hospital-01", corpus / "labels.csv", out)
    n_files = len(list((corpus / "hospital-01").rglob("*.dcm")))
    assert report.ingested == n_files and not report.reported

    images = load_image_set(out, size=8)

    assert images.images.shape == (n_files, 1, 8, 8) and images.images.dtype == np.float32
    digits = load_digits()
    labels_of_pixels: dict[bytes, set[int]] = {}
    for img, label in zip(digits.images, digits.target):
        key = np.round(preprocess(np.clip(img * 16, 0, 255).astype(np.float32), 8), 4).tobytes()
        labels_of_pixels.setdefault(key, set()).add(int(label))
    for img, label in zip(images.images, images.labels):
        assert int(label) in labels_of_pixels[np.round(img[0], 4).tobytes()]
    linkage = LinkageTable.load(out)
    assert set(images.subjects) == {r.commitment for r in linkage.rows}
    assert len(linkage) == report.patients < n_files

    withdrawn = {images.subjects[0]}
    kept = images.exclude(withdrawn)
    assert withdrawn.isdisjoint(kept.subjects) and 0 < len(kept) < len(images)


def test_demo_phi_is_gone_after_ingest(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    ingest(corpus / "hospital-00", corpus / "labels.csv", out)
    sources = sorted((corpus / "hospital-00").rglob("*.dcm"))
    phi = source_phi(sources)
    first = pydicom.dcmread(sources[0])
    assert str(first.PatientID) in phi and str(first.PatientName.family_name) in phi
    assert find_phi(out, phi) == []
    # The comment quoting the patient's name is gone, the rest of the image is there.
    ds = pydicom.dcmread(next(out.rglob("*.dcm")))
    assert "PatientComments" not in ds and "StudyDescription" not in ds
    assert ds.Modality == "OT" and ds.Rows == 8
    assert len(Manifest.load(out)) == len(sources)


def test_make_demo_refuses_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["--hospitals", "0"], ["--alpha", "0"], ["--test-fraction", "1.5"]):
        result = runner.invoke(app, ["data", "make-demo", "--out", str(tmp_path / "x"), *args])
        assert result.exit_code == 1 and "error" in result.output, args


def test_decoded_images_are_cached_per_manifest(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    ingest(corpus / "hospital-02", corpus / "labels.csv", out)
    first = load_image_set(out, size=8)
    cache = out / "cache" / "images-8.safetensors"
    assert cache.exists()

    # A cache that was made from another manifest is not used: poison it, change the
    # manifest's bytes, and the images come from the DICOM files again.
    from safetensors.numpy import save

    cache.write_bytes(save({"images": np.zeros_like(first.images)}, metadata={"manifest_sha256": "0" * 64}))
    again = load_image_set(out, size=8)

    assert np.array_equal(again.images, first.images)
    assert np.array_equal(load_image_set(out, size=8).images, first.images)  # now from the rewritten cache
