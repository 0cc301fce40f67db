"""``medgossip data make-demo``: the demo corpus as real DICOM files.

The 1,797 8x8 images of ``sklearn.datasets.load_digits`` (it ships offline) become
Secondary Capture DICOM files (MONOCHROME2, 8-bit, native 8x8, explicit VR little
endian) with synthetic patients (names, IDs, birth dates, sex, institution, referring
physician, accession numbers, a free-text comment quoting the name) so that
de-identification has something to remove::

    DIR/hospital-00/patient-000/001.dcm ...   non-IID: class shares ~ Dirichlet(alpha)
    DIR/test/patient-000/001.dcm ...          held-out IID test set (test_fraction)
    DIR/labels.csv                             SOPInstanceUID,label for every file

Everything (split, patients, UIDs, file bytes) is a function of ``seed``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from node.errors import DataError

__all__ = ["DemoCorpus", "make_demo"]

_FIRST = ("Ada", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines",
          "Jonas", "Kaito", "Lena", "Marek", "Nadia", "Oskar", "Priya", "Quentin", "Rosa",
          "Sven", "Talia", "Umar", "Vera", "Wim", "Xenia", "Yusuf", "Zora")
_LAST = ("Abernathy", "Bellweather", "Castellanos", "Drummond", "Eriksdottir", "Fairbanks",
         "Grimaldi", "Hollingsworth", "Iwasaki", "Jablonski", "Kowalczyk", "Lindqvist",
         "Montgomery", "Nakashima", "Okonkwo", "Papadopoulos", "Quintanilla", "Rasmussen",
         "Szymanski", "Thorvaldsen", "Underwood", "Valdivieso", "Whitfield", "Yamamoto")
_SITES = ("Saint Aldhelm General Hospital", "Rivermouth University Clinic",
          "Northgate Children's Hospital", "Harborview Memorial Infirmary",
          "Lakeshore Regional Medical Center", "Westbrook Cottage Hospital",
          "Eastfield Sanatorium", "Southmoor Teaching Hospital")
_SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage


@dataclass(frozen=True)
class DemoCorpus:
    """What :func:`make_demo` wrote."""

    root: Path
    hospitals: tuple[Path, ...]
    test_dir: Path
    labels_csv: Path
    images_per_hospital: tuple[int, ...]
    patients_per_hospital: tuple[int, ...]
    test_images: int


def _dirichlet_split(labels: np.ndarray, hospitals: int, alpha: float,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, shares ~ Dirichlet(alpha); redraw until every site has >= 10 images."""
    minimum = min(10, len(labels) // (hospitals * 2))
    for _ in range(200):
        parts: list[list[int]] = [[] for _ in range(hospitals)]
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            shares = rng.dirichlet(np.full(hospitals, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for h, chunk in enumerate(np.split(idx, cuts)):
                parts[h].extend(int(i) for i in chunk)
        if min(len(p) for p in parts) >= minimum:
            return [np.array(sorted(p), dtype=np.int64) for p in parts]
    raise DataError(f"cannot split the digits over {hospitals} sites with alpha={alpha}")


def _uid(seed: int, *parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["medgossip-demo", str(seed), *map(str, parts)]))


def _write_image(path: Path, pixels: np.ndarray, *, seed: int, site: str, site_tag: str,
                 patient: dict[str, str], study: int, number: int) -> str:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    sop_uid = _uid(seed, site_tag, patient["id"], study, number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _SC_CLASS
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = _SC_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = patient["study_date"]
    ds.StudyTime = "101500"
    ds.ContentDate = patient["study_date"]
    ds.ContentTime = f"1016{number % 60:02d}"
    ds.AccessionNumber = f"ACC{patient['id'][-6:]}{study:02d}"
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.Manufacturer = "medgossip demo"
    ds.InstitutionName = site
    ds.InstitutionAddress = f"1 {patient['last']} Street, {site.split()[0]}ville"
    ds.ReferringPhysicianName = patient["doctor"]
    ds.StudyDescription = f"Handwriting screen for {patient['first']} {patient['last']}"
    ds.PatientName = f"{patient['last']}^{patient['first']}"
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = patient["birth"]
    ds.PatientSex = patient["sex"]
    ds.OtherPatientIDs = patient["mrn"]
    ds.PatientComments = f"Contact {patient['first']} {patient['last']} at home"
    ds.StudyInstanceUID = _uid(seed, site_tag, patient["id"], study, "study")
    ds.SeriesInstanceUID = _uid(seed, site_tag, patient["id"], study, "series")
    ds.StudyID = f"{study}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return sop_uid


def _patients(rng: np.random.Generator, site_tag: str, count: int) -> list[dict[str, str]]:
    people = []
    for n in range(count):
        first, last = str(rng.choice(_FIRST)), str(rng.choice(_LAST))
        year, month, day = int(rng.integers(1930, 2015)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        people.append({
            "first": first,
            "last": last,
            "id": f"{site_tag.upper()}-{int(rng.integers(10**6, 10**7))}{n:03d}",
            "mrn": f"MRN{int(rng.integers(10**7, 10**8))}",
            "birth": f"{year:04d}{month:02d}{day:02d}",
            "sex": str(rng.choice(["F", "M"])),
            "study_date": f"2024{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}",
            "doctor": f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}^^Dr.",
        })
    return people


def _write_site(folder: Path, indices: np.ndarray, images: np.ndarray, labels: np.ndarray,
                *, seed: int, site: str, site_tag: str, rng: np.random.Generator,
                rows: list[tuple[str, int]]) -> int:
    """Write one site's images, several per patient; returns the number of patients."""
    order = rng.permutation(indices)
    sizes: list[int] = []
    left = len(order)
    while left > 0:
        take = min(left, int(rng.integers(3, 9)))
        sizes.append(take)
        left -= take
    people = _patients(rng, site_tag, len(sizes))
    start = 0
    for p_no, (patient, size) in enumerate(zip(people, sizes)):
        for number, idx in enumerate(order[start:start + size], start=1):
            pixels = np.clip(images[idx] * 16, 0, 255)
            uid = _write_image(folder / f"patient-{p_no:03d}" / f"{number:03d}.dcm", pixels, seed=seed,
                               site=site, site_tag=site_tag, patient=patient, study=1,
                               number=number)
            rows.append((uid, int(labels[idx])))
        start += size
    return len(people)


def make_demo(out: str | os.PathLike[str], hospitals: int = 4, *, alpha: float = 0.5,
              seed: int = 0, test_fraction: float = 0.2,
              max_images: int | None = None) -> DemoCorpus:
    """Write the demo corpus under ``out`` (see the module docstring).

    ``max_images`` uses a seeded random subset of the 1,797 digits (tests, quick runs).
    """
    from sklearn.datasets import load_digits

    if hospitals < 1:
        raise DataError("--hospitals must be at least 1")
    if alpha <= 0:
        raise DataError("--alpha must be positive")
    if not 0.0 < test_fraction < 1.0:
        raise DataError("--test-fraction must be between 0 and 1")
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not empty")
    digits = load_digits()
    images, labels = digits.images, digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    if max_images is not None:
        if max_images < 10 * hospitals:
            raise DataError("--images must be at least 10 per hospital")
        keep = np.sort(rng.permutation(len(labels))[:max_images])
        images, labels = images[keep], labels[keep]

    order = rng.permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    parts = _dirichlet_split(labels[train_idx], hospitals, alpha, rng)

    rows: list[tuple[str, int]] = []
    folders: list[Path] = []
    patients: list[int] = []
    for h, part in enumerate(parts):
        folder = root / f"hospital-{h:02d}"
        folders.append(folder)
        patients.append(_write_site(folder, train_idx[part], images, labels, seed=seed,
                                    site=_SITES[h % len(_SITES)] + ("" if h < len(_SITES) else f" {h}"),
                                    site_tag=f"h{h:02d}", rng=rng, rows=rows))
    test_dir = root / "test"
    _write_site(test_dir, test_idx, images, labels, seed=seed, site="Held-out Evaluation Clinic",
                site_tag="test", rng=rng, rows=rows)

    labels_csv = root / "labels.csv"
    with labels_csv.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["SOPInstanceUID", "label"])
        writer.writerows(rows)
    return DemoCorpus(
        root=root,
        hospitals=tuple(folders),
        test_dir=test_dir,
        labels_csv=labels_csv,
        images_per_hospital=tuple(len(p) for p in parts),
        patients_per_hospital=tuple(patients),
        test_images=len(test_idx),
    )
