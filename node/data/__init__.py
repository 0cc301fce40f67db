"""Imaging data of one node: DICOM in, de-identified images + consent tokens out.

    dicom_io.py     read a file with pydicom, classify what is wrong with it, decode pixels
    gdcm_jpeg12.py  GDCM as pydicom's last-resort decoder (12-bit JPEG that libjpeg refuses)
    deid.py         PS3.15 Annex E de-identification (dicognito + hand rules)
    consent.py      consent tokens and subject commitments (keccak256)
    linkage.py      the private linkage table (original ID -> pseudonym -> token), 0600
    manifest.py     manifest.json: per image pseudonym, commitment, label, shape, path
    ingest.py       the ingest run: walk, de-identify, write, report
    dataset.py      load_image_set(): the manifest as float32 arrays for training
    demo_corpus.py  make-demo: sklearn digits as DICOM per simulated hospital

Public API (heavy imports - pydicom, dicognito, torch - happen inside functions).
"""

from __future__ import annotations

from node.data.dataset import ImageSet, load_image_set
from node.data.linkage import LinkageRow, LinkageTable
from node.data.manifest import Manifest, ManifestEntry

__all__ = [
    "ImageSet",
    "LinkageRow",
    "LinkageTable",
    "Manifest",
    "ManifestEntry",
    "load_image_set",
]
