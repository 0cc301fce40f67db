"""Helpers for the data tests: collect original PHI values from source DICOM files and
search the raw bytes of an output tree for them."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import pydicom
from pydicom.multival import MultiValue

PHI_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName",
                "OtherPatientIDs")
MIN_LEN = 5


def _strings(value: object) -> list[str]:
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v).strip() for v in value]
    return [str(value).strip()] if value is not None else []


def _read(path: Path) -> pydicom.Dataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - the test only wants what pydicom can read
        return None


def source_phi(files: Iterable[Path]) -> dict[str, str]:
    """PHI value -> a source file it came from.

    PHI = the PHI_KEYWORDS values (and name components) plus private-tag text of at
    least 8 characters that does not also occur as a public value in the same file
    (a private copy of the manufacturer name is not PHI). Values that also occur as a
    legitimately retained public value in *any* source (e.g. one file's institution is
    another's manufacturer) and degenerate values (one repeated character, short digit
    strings that collide with UIDs) are left out: they would match by coincidence.
    """
    phi: dict[str, str] = {}
    benign: set[str] = set()
    for path in files:
        ds = _read(path)
        if ds is None:
            continue
        values: set[str] = set()
        for keyword in PHI_KEYWORDS:
            if keyword in ds:
                for text in _strings(ds[keyword].value):
                    values.add(text)
                    if keyword == "PatientName":
                        values.update(p.strip() for p in re.split(r"[\^=]", text))
        public: list[str] = []
        private: list[str] = []

        def collect(_ds: pydicom.Dataset, elem: pydicom.DataElement) -> None:
            if isinstance(elem.value, str):
                (private if elem.tag.is_private else public).append(elem.value.strip())
            if (not elem.tag.is_private and elem.keyword not in PHI_KEYWORDS
                    and isinstance(elem.value, str)):
                benign.add(elem.value.strip())

        ds.walk(collect)
        public_text = "\n".join(public)
        values.update(v for v in private
                      if len(v) >= 8 and re.search("[A-Za-z]", v) and v not in public_text)
        for value in values:
            if len(value) < MIN_LEN or len(set(value)) == 1:
                continue
            if value.isdigit() and len(value) < 8:
                continue
            phi.setdefault(value, path.name)
    return {v: src for v, src in phi.items() if v not in benign}


def find_phi(out_dir: Path, phi: dict[str, str], skip: Iterable[str] = ("linkage.json",)) -> list[str]:
    """Every (value, source, output file) hit of a PHI value in the raw output bytes."""
    skipped = set(skip)
    hits = []
    blobs = {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file() and p.name not in skipped}
    for value, source in phi.items():
        needles = {value.encode("utf-8", "ignore"), value.encode("latin-1", "ignore")}
        for path, blob in blobs.items():
            if any(n and n in blob for n in needles):
                hits.append(f"{value!r} from {source} in {path.relative_to(out_dir)}")
    return hits
