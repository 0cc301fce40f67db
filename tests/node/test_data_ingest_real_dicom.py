"""Ingest of every real DICOM file we have offline: pydicom's test files, pydicom-data
and deid-data (all of them, images or not). One module-scoped ingest run; the files
that run skips as duplicates of an already ingested SOP instance are then ingested
alone, so every decodable encoding goes through de-identification once."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest

from node.data import LinkageTable, Manifest, load_image_set
from node.data.consent import commitment_of
from node.data.dicom_io import decode_middle_frame, read_dataset
from node.data.ingest import IngestReport, ingest
from tests.node.dicom_phi_scan import find_phi, source_phi

pydicom_data = pytest.importorskip("data_store", reason="pydicom-data (dev extra) not installed")
deid_data = pytest.importorskip("deid_data", reason="deid-data (dev extra) not installed")

SOURCES = {
    # Listed from the package directories: get_testdata_files() would try to download
    # names it lacks (~21 s each offline).
    "pydicom": Path(pydicom.__file__).parent / "data" / "test_files",
    "pydicom_data": Path(pydicom_data.__file__).parent / "data",
    "deid": Path(deid_data.__file__).parent / "data",
}
UNLABELLED = "pydicom/CT_small.dcm"
# NEMA WG04 NM1_JPLY: 12-bit JPEG Extended whose scan header libjpeg refuses (Se != 63);
# JPGExtended.dcm is the same image (same SOP instance) with the header fixed.
JPEG_12BIT = "JPEG-lossy.dcm"
JPEG_12BIT_FIXED = "JPGExtended.dcm"
# Reasons a file *with pixel data* may legitimately not be ingested.
PIXEL_FILE_REASONS = {"pixel-decode-failed", "unsupported-transfer-syntax", "unsupported-image",
                      "burned-in-annotation", "duplicate", "no-label"}
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_DT = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?")


@dataclass
class Ingested:
    src: Path
    labels: Path
    out: Path
    report: IngestReport
    extra_outs: list[Path]  # one data folder per file skipped as a duplicate
    files: list[Path]  # every source file
    pixel_files: set[str]  # relative paths of files that have PixelData


def _read(path: Path) -> pydicom.Dataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, force=True, stop_before_pixels=False, defer_size=256)
    except Exception:  # noqa: BLE001 - only classifying test inputs
        return None


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    root = tmp_path_factory.mktemp("real-dicom")
    src = root / "src"
    for name, folder in SOURCES.items():
        shutil.copytree(folder, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    files = sorted(p for p in src.rglob("*") if p.is_file())
    rels = [p.relative_to(src).as_posix() for p in files]
    labels = root / "labels.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows((rel, i % 10) for i, rel in enumerate(rels) if rel != UNLABELLED)
    pixel_files = set()
    for path, rel in zip(files, rels):
        ds = _read(path)
        if ds is not None and "PixelData" in ds:
            pixel_files.add(rel)

    out = root / "data"
    report = ingest(src, labels, out, label_key="path")

    extra_outs = []
    for n, item in enumerate(r for r in report.reported if r.reason == "duplicate"):
        alone = root / f"alone-{n:03d}"
        one_csv = root / f"alone-{n:03d}.csv"
        one_csv.write_text(f"path,label\n{Path(item.path).name},1\n")
        ingest(src / item.path, one_csv, alone, label_key="path")
        extra_outs.append(alone)
    return Ingested(src, labels, out, report, extra_outs, files, pixel_files)


def _all_outputs(ing: Ingested) -> list[Path]:
    return [ing.out, *ing.extra_outs]


def test_every_file_is_ingested_or_reported_with_a_reason(ingested: Ingested) -> None:
    report = ingested.report
    assert report.source_files == len(ingested.files)
    assert report.ingested + report.already_present + len(report.reported) == report.source_files
    assert report.already_present == 0
    assert report.ingested >= 90, report.by_reason
    reported = {r.path: r for r in report.reported}
    assert reported[UNLABELLED].reason == "no-label"
    assert reported["pydicom/rtstruct.dcm"].reason == "no-pixel-data"
    assert reported["pydicom/MR_truncated.dcm"].reason in ("duplicate", "pixel-decode-failed")
    assert f"pydicom/{JPEG_12BIT}" not in reported  # decoded through GDCM, so ingested
    assert reported[f"pydicom/{JPEG_12BIT_FIXED}"].reason == "duplicate"
    assert all(r.reason != "deidentification-failed" for r in report.reported), [
        r for r in report.reported if r.reason == "deidentification-failed"]
    for rel in ingested.pixel_files & reported.keys():
        assert reported[rel].reason in PIXEL_FILE_REASONS, reported[rel]
    on_disk = json.loads((ingested.out / "report.json").read_text())
    assert on_disk["ingested"] == report.ingested
    assert len(on_disk["reported"]) == len(report.reported)


def test_every_decodable_duplicate_also_ingests_alone(ingested: Ingested) -> None:
    assert ingested.extra_outs
    ingested_alone = sum(len(Manifest.load(d)) for d in ingested.extra_outs)
    # MR_truncated shares MR_small's UID but its pixels are cut off: reported, not fatal.
    assert ingested_alone >= len(ingested.extra_outs) - 3


def test_outputs_are_valid_deidentified_dicom(ingested: Ingested) -> None:
    checked = 0
    for data_dir in _all_outputs(ingested):
        for entry in Manifest.load(data_dir).entries:
            ds = pydicom.dcmread(data_dir / entry.path)  # no force: a proper Part 10 file
            assert ds.preamble == b"\x00" * 128
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
            assert ds.PatientIdentityRemoved == "YES"
            assert ds.DeidentificationMethod
            assert {i.CodeValue for i in ds.DeidentificationMethodCodeSequence} >= {"113100"}
            assert ds.PatientName == entry.pseudonym and ds.PatientID == entry.pseudonym
            assert not ds.get("PatientBirthDate")
            for elem in ds.iterall():
                assert not elem.tag.is_private, (entry.path, elem.tag)
                if elem.VR in ("DA", "TM", "DT") and elem.value:
                    values = elem.value if isinstance(elem.value, list) else [elem.value]
                    pattern = {"DA": _DA, "TM": _TM, "DT": _DT}[elem.VR]
                    assert all(pattern.fullmatch(str(v)) for v in values), (entry.path, elem)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            arr = pydicom.pixels.pixel_array(ds, index=frames // 2 if frames > 1 else None)
            assert arr.shape[:2] == tuple(entry.shape[1:3] if frames > 1 else entry.shape[:2])
            checked += 1
    assert checked >= 150


def test_no_original_phi_survives_in_any_output_byte(ingested: Ingested) -> None:
    phi = source_phi(ingested.files)
    assert len(phi) > 50  # the scan has something to look for ...
    assert find_phi(ingested.src / "pydicom", phi)  # ... and finds it in the sources
    hits = []
    for data_dir in _all_outputs(ingested):
        hits += find_phi(data_dir, phi)
    assert hits == []


def test_linkage_table_is_private_and_consistent(ingested: Ingested) -> None:
    path = ingested.out / "linkage.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    table = LinkageTable.load(ingested.out)
    manifest = Manifest.load(ingested.out)
    by_pseudonym = {r.pseudonym: r for r in table.rows}
    assert {e.pseudonym for e in manifest.entries} == set(by_pseudonym)
    for entry in manifest.entries:
        row = by_pseudonym[entry.pseudonym]
        assert row.commitment == entry.commitment == commitment_of(row.token)
    assert len({r.token for r in table.rows}) == len(table.rows)
    for row in table.rows:  # an accidental log line of a row leaks neither secret
        assert row.token.hex() not in repr(row) and "token" not in repr(row)
        assert "original_patient_id" not in repr(row)


def test_uids_are_remapped_consistently(ingested: Ingested) -> None:
    reported = {r.path for r in ingested.report.reported}
    source_studies: set[str] = set()
    source_sops: set[str] = set()
    for path in ingested.files:
        if path.relative_to(ingested.src).as_posix() in reported:
            continue
        ds = _read(path)
        assert ds is not None
        source_studies.add(str(ds.get("StudyInstanceUID", "")))
        source_sops.add(str(ds.get("SOPInstanceUID", "")))
    out_studies: set[str] = set()
    out_sops: set[str] = set()
    for entry in Manifest.load(ingested.out).entries:
        ds = pydicom.dcmread(ingested.out / entry.path, stop_before_pixels=True)
        out_studies.add(str(ds.get("StudyInstanceUID", "")))
        out_sops.add(str(ds.get("SOPInstanceUID", "")))
    assert len(out_studies) == len(source_studies)  # same grouping: studies stay linked
    assert len(out_sops) == len(source_sops)
    assert not (out_studies & source_studies - {""}) and not (out_sops & source_sops)


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in (folder / "images").rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_reingest_is_idempotent(ingested: Ingested) -> None:
    manifest_before = (ingested.out / "manifest.json").read_bytes()
    linkage_before = LinkageTable.load(ingested.out).rows
    images_before = _tree_digest(ingested.out)

    again = ingest(ingested.src, ingested.labels, ingested.out, label_key="path")

    assert again.ingested == 0
    assert again.already_present == ingested.report.ingested
    assert (ingested.out / "manifest.json").read_bytes() == manifest_before
    after = LinkageTable.load(ingested.out).rows
    assert [(r.pseudonym, r.token) for r in after] == [(r.pseudonym, r.token) for r in linkage_before]
    assert _tree_digest(ingested.out) == images_before


def test_load_image_set_of_heterogeneous_images(ingested: Ingested) -> None:
    manifest = Manifest.load(ingested.out)
    images = load_image_set(ingested.out, size=16)
    assert images.images.shape == (len(manifest), 1, 16, 16)
    assert images.images.dtype == np.float32 and images.labels.dtype == np.int64
    assert np.isfinite(images.images).all()
    means = images.images.reshape(len(manifest), -1).mean(axis=1)
    assert np.abs(means).max() < 1e-3
    assert images.subjects == tuple(e.commitment for e in manifest.entries)
    assert list(images.labels) == [e.label for e in manifest.entries]


def _ingest_one(src_file: Path, root: Path) -> tuple[IngestReport, Path]:
    src = root / "src"
    src.mkdir(parents=True)
    shutil.copy(src_file, src / src_file.name)
    labels = root / "labels.csv"
    labels.write_text(f"path,label\n{src_file.name},3\n")
    out = root / "data"
    return ingest(src, labels, out, label_key="path"), out


def test_12bit_jpeg_extended_that_libjpeg_refuses_is_ingested_and_decodes(tmp_path: Path) -> None:
    source = SOURCES["pydicom"] / JPEG_12BIT
    with pytest.raises(RuntimeError, match="scan stop must be 63"):  # libjpeg alone refuses it
        pydicom.pixels.pixel_array(pydicom.dcmread(source), decoding_plugin="pylibjpeg")
    reference = pydicom.pixels.pixel_array(pydicom.dcmread(SOURCES["pydicom"] / JPEG_12BIT_FIXED),
                                           decoding_plugin="pylibjpeg")

    report, out = _ingest_one(source, tmp_path)

    assert (report.ingested, report.reported) == (1, ())
    [entry] = Manifest.load(out).entries
    assert tuple(entry.shape) == (1024, 256)
    written = pydicom.dcmread(out / entry.path)
    assert written.file_meta.TransferSyntaxUID == pydicom.uid.JPEGExtended12Bit
    pixels = pydicom.pixels.pixel_array(written)
    assert pixels.shape == reference.shape and pixels.dtype == np.uint16
    assert np.abs(pixels.astype(np.int32) - reference).max() <= 1  # IDCT rounding only
    assert pixels.max() == reference.max() > 0
    images = load_image_set(out, size=16)
    assert images.images.shape == (1, 1, 16, 16) and np.isfinite(images.images).all()
    assert images.images.std() > 0


@pytest.mark.parametrize("name", ["SC_rgb_jpeg.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm"])
def test_gdcm_is_only_the_last_resort(name: str) -> None:
    """Files libjpeg decodes keep libjpeg's pixels (GDCM's YBR->RGB rounds differently)."""
    path = SOURCES["pydicom"] / name
    expected = pydicom.pixels.pixel_array(pydicom.dcmread(path), decoding_plugin="pylibjpeg")

    frame = decode_middle_frame(read_dataset(path))

    np.testing.assert_array_equal(frame, expected)


def test_a_truncated_12bit_jpeg_is_reported_not_ingested(tmp_path: Path) -> None:
    ds = pydicom.dcmread(SOURCES["pydicom"] / JPEG_12BIT)
    [frame] = pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = pydicom.encaps.encapsulate([frame[: len(frame) // 2]])
    ds["PixelData"].is_undefined_length = True
    bad = tmp_path / "truncated.dcm"
    ds.save_as(bad)

    report, out = _ingest_one(bad, tmp_path / "run")

    assert report.ingested == 0
    assert [r.reason for r in report.reported] == ["pixel-decode-failed"]
