"""Bad input never crashes an ingest and loses nothing; the CLI fails with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from node.cli import app
from node.data import Manifest
from node.data.ingest import ingest, read_labels
from node.errors import LabelsError, SourceNotFound

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture()
def messy_source(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "garbage.bin").write_bytes(bytes(range(256)) * 40)
    (src / "notes.txt").write_text("Patient: Jane Doe, please call back.\n" * 20)
    liver = (TEST_FILES / "liver_1frame.dcm").read_bytes()
    (src / "truncated.dcm").write_bytes(liver[: len(liver) // 2])
    shutil.copy(TEST_FILES / "rtstruct.dcm", src / "rtstruct.dcm")
    shutil.copy(TEST_FILES / "CT_small.dcm", src / "good.dcm")
    shutil.copy(TEST_FILES / "MR_small.dcm", src / "unlabelled.dcm")
    (src / "empty.dcm").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    rows = ["good.dcm,3", "truncated.dcm,1", "rtstruct.dcm,2", "garbage.bin,0", "notes.txt,0",
            "empty.dcm,0"]
    labels.write_text("path,label\n" + "\n".join(rows) + "\n")
    return src, labels


def test_bad_files_are_reported_and_the_good_one_ingested(messy_source: tuple[Path, Path], tmp_path: Path) -> None:
    src, labels = messy_source
    out = tmp_path / "data"

    report = ingest(src, labels, out, label_key="path")

    reasons = {r.path: r.reason for r in report.reported}
    assert report.ingested == 1
    # pydicom (force=True) parses bytes, text and an empty file into datasets without a
    # SOP Class UID or pixel data: "not-dicom", not a parse error ("unreadable")
    assert reasons == {
        "garbage.bin": "not-dicom",
        "notes.txt": "not-dicom",
        "empty.dcm": "not-dicom",
        "truncated.dcm": "pixel-decode-failed",
        "rtstruct.dcm": "no-pixel-data",
        "unlabelled.dcm": "no-label",
    }
    (entry,) = Manifest.load(out).entries
    assert entry.label == 3 and entry.shape == (128, 128)
    on_disk = json.loads((out / "report.json").read_text())
    assert {r["path"] for r in on_disk["reported"]} == set(reasons)
    assert not report.nothing_ingested


def test_missing_source_and_bad_csv_raise_clear_errors(messy_source: tuple[Path, Path], tmp_path: Path) -> None:
    src, labels = messy_source
    with pytest.raises(SourceNotFound):
        ingest(tmp_path / "nope", labels, tmp_path / "out")
    bad = tmp_path / "bad.csv"
    for text, fragment in (("", "empty"), ("a,b,c\n1,2,3\n", "label"),
                           ("path,label\ngood.dcm,three\n", "line 2"),
                           ("path,label\ngood.dcm,1\ngood.dcm,2\n", "conflicting")):
        bad.write_text(text)
        with pytest.raises(LabelsError, match=fragment):
            read_labels(bad, "path")
    with pytest.raises(LabelsError, match="not found"):
        read_labels(tmp_path / "missing.csv", "path")
    with pytest.raises(LabelsError, match="label-key"):
        read_labels(labels, "PatientID")
    assert not (tmp_path / "out").exists()


def test_cli_exit_codes_and_one_line_errors(messy_source: tuple[Path, Path], tmp_path: Path) -> None:
    src, labels = messy_source
    runner = CliRunner()

    missing = runner.invoke(app, ["data", "ingest", str(tmp_path / "nope"), "--labels", str(labels),
                                  "--out", str(tmp_path / "o1")])
    assert missing.exit_code == 1
    assert "source not found" in missing.output and "Traceback" not in missing.output

    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    shutil.copy(src / "garbage.bin", only_bad / "garbage.bin")
    shutil.copy(src / "rtstruct.dcm", only_bad / "rtstruct.dcm")
    nothing = runner.invoke(app, ["data", "ingest", str(only_bad), "--labels", str(labels),
                                  "--label-key", "path", "--out", str(tmp_path / "o2")])
    assert nothing.exit_code == 1
    assert "nothing could be ingested" in nothing.output
    assert (tmp_path / "o2" / "report.json").is_file()

    mixed = runner.invoke(app, ["data", "ingest", str(src), "--labels", str(labels), "--label-key",
                                "path", "--out", str(tmp_path / "o3"), "--json"])
    assert mixed.exit_code == 0, mixed.output
    assert json.loads(mixed.output)["ingested"] == 1
