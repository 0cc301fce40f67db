"""``medgossip data ingest``: a folder of DICOM files in, a de-identified data folder out.

    DATA_DIR/
      manifest.json          per image: pseudonym, commitment, label, shape, path
      report.json            the last run: counts, and every file not ingested + why
      linkage.json           PRIVATE (0600): original patient ID -> pseudonym -> token
      images/<pseudonym>/<key>.dcm   de-identified DICOM, pixel data as in the source

Every source file ends up in exactly one bucket: ingested now, already present (same
SOPInstanceUID, or same bytes, as an earlier run), or reported with a reason. Bad files
never stop the run. Nothing identifying is logged; the report names rejected source
files by their path relative to SRC (the custodian's own file names).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gossip.files import atomic_write
from node.data.deid import Deidentifier
from node.data.dicom_io import (
    Reason,
    Rejected,
    check_image,
    decode_middle_frame,
    pixel_shape,
    read_dataset,
)
from node.data.linkage import LinkageTable
from node.data.manifest import Manifest, ManifestEntry
from node.errors import DataError, LabelsError, SourceNotFound

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["LABEL_KEYS", "IngestReport", "ReportedFile", "ingest", "read_labels"]

log = logging.getLogger(__name__)

LABEL_KEYS = ("SOPInstanceUID", "AccessionNumber", "path")
REPORT_FILE = "report.json"
IMAGES_DIR = "images"
_SAVE_EVERY = 200


@dataclass(frozen=True)
class ReportedFile:
    """A source file that was not ingested, and why."""

    path: str  # relative to SRC
    reason: str  # one of node.data.dicom_io.Reason
    detail: str


@dataclass(frozen=True)
class IngestReport:
    """Outcome of one ingest run (also written to ``DATA_DIR/report.json``)."""

    source_files: int
    ingested: int  # new images this run
    already_present: int  # skipped: in the manifest from an earlier run
    reported: tuple[ReportedFile, ...]
    images: int  # images in the manifest after the run
    patients: int  # patients in the linkage table after the run
    seconds: float

    @property
    def nothing_ingested(self) -> bool:
        """True when the data folder holds no usable image after this run."""
        return self.images == 0

    @property
    def by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.reported).items()))

    def to_json(self) -> dict[str, object]:
        return {
            "format": "medgossip-ingest-report/1",
            "source_files": self.source_files,
            "ingested": self.ingested,
            "already_present": self.already_present,
            "reported_count": len(self.reported),
            "by_reason": self.by_reason,
            "images": self.images,
            "patients": self.patients,
            "seconds": round(self.seconds, 3),
            "reported": [
                {"path": r.path, "reason": r.reason, "detail": r.detail} for r in self.reported
            ],
        }


def read_labels(csv_path: str | os.PathLike[str], label_key: str) -> dict[str, int]:
    """Read ``key -> integer label`` from a CSV with a header row.

    The header must have a ``label`` column and a column named after ``label_key``
    (or ``key``); a two-column file may name its key column anything.
    """
    if label_key not in LABEL_KEYS:
        raise LabelsError(f"--label-key must be one of {', '.join(LABEL_KEYS)}, not {label_key!r}")
    path = Path(csv_path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise LabelsError(f"labels file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"cannot read labels file {path}: {type(exc).__name__}") from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise LabelsError(f"labels file {path} is empty")
    header = [h.strip() for h in rows[0]]
    if "label" not in header:
        raise LabelsError(f"labels file {path}: the header has no 'label' column")
    label_col = header.index("label")
    if label_key in header:
        key_col = header.index(label_key)
    elif "key" in header:
        key_col = header.index("key")
    elif len(header) == 2:
        key_col = 1 - label_col
    else:
        raise LabelsError(f"labels file {path}: the header has no {label_key!r} (or 'key') column")
    labels: dict[str, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(key_col, label_col):
            raise LabelsError(f"labels file {path}, line {line_no}: too few columns")
        key, raw_label = row[key_col].strip(), row[label_col].strip()
        try:
            label = int(raw_label)
        except ValueError as exc:
            raise LabelsError(
                f"labels file {path}, line {line_no}: label {raw_label!r} is not an integer"
            ) from exc
        if label < 0:
            raise LabelsError(f"labels file {path}, line {line_no}: negative label")
        if labels.get(key, label) != label:
            raise LabelsError(f"labels file {path}, line {line_no}: conflicting label for a key")
        labels[key] = label
    if not labels:
        raise LabelsError(f"labels file {path} has no rows")
    return labels


def _source_files(src: Path, out: Path) -> list[Path]:
    if src.is_file():
        return [src]
    out_resolved = out.resolve()
    files: list[Path] = []
    for root, dirs, names in os.walk(src):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if (root_path / d).resolve() != out_resolved)
        files.extend(root_path / n for n in sorted(names))
    return files


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _patient_key(ds: Dataset, path: Path) -> tuple[str, str]:
    """(stable key, display ID) of the patient a dataset belongs to."""
    pid = str(ds.get("PatientID", "") or "").strip()
    issuer = str(ds.get("IssuerOfPatientID", "") or "").strip()
    if pid:
        return f"id:{issuer}/{pid}", pid
    name = str(ds.get("PatientName", "") or "").strip()
    if name:
        birth = str(ds.get("PatientBirthDate", "") or "").strip()
        return f"name:{name}|{birth}", name
    study = str(ds.get("StudyInstanceUID", "") or "").strip()
    if study:
        return f"study:{study}", f"(no patient ID; study {study})"
    return f"file:{_file_digest(path)}", "(no patient ID)"


class _Ingestor:
    def __init__(self, src: Path, labels: dict[str, int], out: Path, label_key: str) -> None:
        self.src = src
        self.labels = labels
        self.out = out
        self.label_key = label_key
        self.manifest = Manifest.load_or_empty(out)
        if len(self.manifest) and not LinkageTable.exists(out):
            raise DataError(f"{out} has a manifest but no linkage table; refusing to mix folders")
        self.linkage = LinkageTable.load_or_create(out)
        self.deid = Deidentifier(self.linkage.secret)
        self.entries = {e.key: e for e in self.manifest.entries}
        self.seen: dict[str, str] = {}

    def key_for(self, ds: Dataset, path: Path) -> str:
        uid = str(ds.get("SOPInstanceUID", "") or "").strip()
        material = f"sop:{uid}" if uid else f"sha256:{_file_digest(path)}"
        return hmac.new(self.linkage.secret, material.encode(), hashlib.sha256).hexdigest()[:32]

    def label_for(self, ds: Dataset, rel: str) -> int:
        if self.label_key == "path":
            candidates = [rel, str(self.src / rel)]
        else:
            candidates = [str(ds.get(self.label_key, "") or "").strip()]
        for candidate in candidates:
            if candidate and candidate in self.labels:
                return self.labels[candidate]
        raise Rejected(Reason.NO_LABEL, f"no row for this file's {self.label_key} in the labels CSV")

    def one(self, path: Path, rel: str) -> bool:
        """Ingest one file; True if new, False if already present; Rejected otherwise."""
        ds = read_dataset(path)
        check_image(ds)
        key = self.key_for(ds, path)
        if key in self.seen:
            raise Rejected(Reason.DUPLICATE, f"same SOP instance as {self.seen[key]}")
        if key in self.entries:
            self.seen[key] = rel
            return False
        label = self.label_for(ds, rel)
        if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
            raise Rejected(Reason.BURNED_IN, "BurnedInAnnotation=YES: identifying text may be in the pixels")
        decode_middle_frame(ds)
        shape = pixel_shape(ds)
        patient_key, display_id = _patient_key(ds, path)
        is_new_patient = self.linkage.by_key(patient_key) is None
        row = self.linkage.get_or_add(patient_key, display_id)
        rel_out = f"{IMAGES_DIR}/{row.pseudonym}/{key}.dcm"
        try:
            self._write(ds, row.pseudonym, self.out / rel_out, shape)
        except Rejected:
            if is_new_patient:
                self.linkage.remove(patient_key)
            raise
        self.entries[key] = ManifestEntry(
            pseudonym=row.pseudonym,
            commitment=row.commitment,
            label=label,
            shape=shape,
            path=rel_out,
            key=key,
        )
        self.seen[key] = rel
        return True

    def _write(self, ds: Dataset, pseudonym: str, target: Path, shape: tuple[int, ...]) -> None:
        import pydicom

        try:
            self.deid.deidentify(ds, pseudonym)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            data = buffer.getvalue()
            back = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=False)
            if pixel_shape(back) != shape or back.get("PatientIdentityRemoved") != "YES":
                raise Rejected(Reason.DEID_FAILED, "output does not read back as written")
            atomic_write(target, data, mode=0o666)  # the umask decides, as for any file
        except Rejected:
            raise
        except Exception as exc:  # noqa: BLE001 - boundary: untrusted file x third-party code
            # dicognito and pydicom's writer raise many unrelated types on odd input;
            # the file is counted and reported, the run goes on.
            log.info("de-identification failed: %s", type(exc).__name__)
            raise Rejected(
                Reason.DEID_FAILED, f"cannot de-identify/write valid DICOM ({type(exc).__name__})"
            ) from exc

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.linkage.save(self.out)  # before the manifest: no entry without its patient
        Manifest(tuple(self.entries.values())).save(self.out)


def ingest(
    src: str | os.PathLike[str],
    labels_csv: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    label_key: str = "SOPInstanceUID",
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """De-identify every DICOM image under ``src`` into the data folder ``out``.

    Raises :class:`SourceNotFound` / :class:`LabelsError` for a missing source or a bad
    CSV before touching ``out``; per-file problems go into the returned report (and
    ``out/report.json``). Idempotent: re-running on the same source adds nothing.
    ``progress(done, total)`` is called after each file.
    """
    started = time.monotonic()
    src_path, out_path = Path(src), Path(out)
    if not src_path.exists():
        raise SourceNotFound(f"source not found: {src_path}")
    labels = read_labels(labels_csv, label_key)
    files = _source_files(src_path, out_path)
    out_path.mkdir(parents=True, exist_ok=True)
    worker = _Ingestor(src_path if src_path.is_dir() else src_path.parent, labels, out_path, label_key)

    ingested = already = 0
    reported: list[ReportedFile] = []
    try:
        for done, path in enumerate(files, start=1):
            rel = path.relative_to(worker.src).as_posix()
            try:
                if worker.one(path, rel):
                    ingested += 1
                else:
                    already += 1
            except Rejected as rejected:
                reported.append(ReportedFile(rel, rejected.reason, rejected.detail))
            if ingested and ingested % _SAVE_EVERY == 0:
                worker.save()
            if progress is not None:
                progress(done, len(files))
    finally:
        worker.save()

    report = IngestReport(
        source_files=len(files),
        ingested=ingested,
        already_present=already,
        reported=tuple(reported),
        images=len(worker.entries),
        patients=len({e.pseudonym for e in worker.entries.values()}),
        seconds=time.monotonic() - started,
    )
    (out_path / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=1) + "\n")
    log.info(
        "ingest: %d files, %d new, %d already present, %d reported",
        len(files), ingested, already, len(reported),
    )
    return report
