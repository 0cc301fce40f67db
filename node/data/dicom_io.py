"""Reading DICOM files and turning their pixels into one grayscale plane.

Everything pydicom raises is caught here and turned into a :class:`Rejected` with a
short reason code, so that ingest can report the file instead of crashing. Nothing in
this module logs or prints dataset contents. Before the first decode, GDCM is made
pydicom's last-resort decoder (:mod:`node.data.gdcm_jpeg12`): it decodes the 12-bit
JPEG Extended files that pylibjpeg refuses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "Rejected",
    "Reason",
    "read_dataset",
    "pixel_shape",
    "check_image",
    "int_attr",
    "decode_middle_frame",
    "to_grayscale",
    "transfer_syntax_of",
]


MAX_FRAME_PIXELS = 100_000_000  # refuse absurd headers before any decoder allocates


class Reason:
    """Reason codes of a rejected file (the ``reason`` column of the ingest report)."""

    UNREADABLE = "unreadable"  # I/O error, or pydicom cannot parse it at all
    NOT_DICOM = "not-dicom"  # parses to nothing that looks like a DICOM object
    NO_PIXEL_DATA = "no-pixel-data"  # a DICOM object without an image (RT struct, SR ...)
    UNSUPPORTED_SYNTAX = "unsupported-transfer-syntax"  # no installed decoder
    UNSUPPORTED_IMAGE = "unsupported-image"  # float pixel data, odd photometric ...
    DECODE_FAILED = "pixel-decode-failed"  # truncated or corrupt pixel data
    BURNED_IN = "burned-in-annotation"  # BurnedInAnnotation=YES: PHI may be in pixels
    NO_LABEL = "no-label"  # no row for this file in the labels CSV
    DUPLICATE = "duplicate"  # same SOPInstanceUID (or same bytes) as another file
    DEID_FAILED = "deidentification-failed"  # could not de-identify / write valid output


@dataclass(frozen=True)
class Rejected(Exception):
    """A file that cannot be ingested; ``detail`` never contains header values."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def transfer_syntax_of(ds: Dataset) -> str:
    """The transfer syntax UID a dataset was (or will be) encoded with."""
    from pydicom.uid import (
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        return str(ExplicitVRLittleEndian)
    if implicit:
        return str(ImplicitVRLittleEndian)
    return str(ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def read_dataset(path: Path) -> Dataset:
    """Read a file with pydicom (large values deferred); raise :class:`Rejected`."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, defer_size="512 KB")
            # Touch every element once so that parse errors surface here, not later.
            for _ in ds.iterall():
                pass
    except (InvalidDicomError, EOFError) as exc:
        raise Rejected(Reason.UNREADABLE, f"not parseable as DICOM ({type(exc).__name__})") from exc
    except OSError as exc:
        raise Rejected(Reason.UNREADABLE, f"cannot read file ({exc.strerror or type(exc).__name__})") from exc
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, NotImplementedError,
            OverflowError, UnicodeError, LookupError) as exc:
        raise Rejected(Reason.UNREADABLE, f"malformed DICOM ({type(exc).__name__})") from exc
    if "SOPClassUID" not in ds and "PixelData" not in ds:
        raise Rejected(Reason.NOT_DICOM, "no SOP Class UID and no pixel data")
    # Files without a meta header (or without its transfer syntax) still decode once
    # the syntax they were actually parsed with is recorded.
    from pydicom.dataset import FileMetaDataset

    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = transfer_syntax_of(ds)
    return ds


def int_attr(ds: Dataset, keyword: str, default: int) -> int:
    """An integer attribute, or :class:`Rejected` if its value is malformed."""
    try:
        value = ds.get(keyword, default)
        return int(value) if value not in (None, "") else default
    except (ValueError, TypeError, OverflowError) as exc:
        raise Rejected(Reason.UNSUPPORTED_IMAGE, f"malformed {keyword}") from exc


def pixel_shape(ds: Dataset) -> tuple[int, ...]:
    """Shape of the full pixel array as pydicom returns it: (frames,) rows, cols (, samples)."""
    rows = int_attr(ds, "Rows", 0)
    cols = int_attr(ds, "Columns", 0)
    frames = max(int_attr(ds, "NumberOfFrames", 1), 1)
    samples = max(int_attr(ds, "SamplesPerPixel", 1), 1)
    shape: tuple[int, ...] = (rows, cols)
    if frames > 1:
        shape = (frames, *shape)
    if samples > 1:
        shape = (*shape, samples)
    return shape


def check_image(ds: Dataset) -> None:
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise Rejected(Reason.UNSUPPORTED_IMAGE, "float pixel data is not supported")
        raise Rejected(Reason.NO_PIXEL_DATA, f"no pixel data (SOP class {_sop_class_name(ds)})")
    if int_attr(ds, "Rows", 0) < 1 or int_attr(ds, "Columns", 0) < 1:
        raise Rejected(Reason.UNSUPPORTED_IMAGE, "missing Rows/Columns")
    if int_attr(ds, "Rows", 0) * int_attr(ds, "Columns", 0) > MAX_FRAME_PIXELS:
        raise Rejected(Reason.UNSUPPORTED_IMAGE, f"frame larger than {MAX_FRAME_PIXELS} pixels")
    from pydicom.pixels import get_decoder

    from node.data.gdcm_jpeg12 import use_gdcm_as_fallback

    use_gdcm_as_fallback()
    tsyntax = transfer_syntax_of(ds)
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError as exc:
        raise Rejected(Reason.UNSUPPORTED_SYNTAX, f"no decoder for transfer syntax {tsyntax}") from exc
    if not decoder.is_available:
        raise Rejected(
            Reason.UNSUPPORTED_SYNTAX, f"no installed decoder for transfer syntax {tsyntax}"
        )


def _sop_class_name(ds: Dataset) -> str:
    uid = ds.get("SOPClassUID")
    if uid is None:
        return "unknown"
    name = getattr(uid, "name", "") or str(uid)
    return str(name)


def decode_middle_frame(ds: Dataset) -> np.ndarray:
    """Decode only the middle frame: (rows, cols) or (rows, cols, samples) RGB.

    Colour data is returned as RGB (pydicom converts YBR); palette colour images
    are expanded through their lookup table.
    """
    from pydicom.pixels import apply_color_lut, pixel_array

    check_image(ds)
    frames = max(int_attr(ds, "NumberOfFrames", 1), 1)
    index = frames // 2 if frames > 1 else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pixel_array(ds, index=index)
            if str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
                arr = apply_color_lut(arr, ds)
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError, IndexError,
            OSError, EOFError, NotImplementedError, OverflowError, MemoryError) as exc:
        raise Rejected(Reason.DECODE_FAILED, f"pixel data cannot be decoded ({type(exc).__name__})") from exc
    if arr.ndim == 3 and frames > 1 and arr.shape[0] == frames:
        arr = arr[frames // 2]  # a decoder that ignored index
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise Rejected(Reason.UNSUPPORTED_IMAGE, f"unexpected pixel array shape {arr.shape}")
    return arr


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_grayscale(frame: np.ndarray, photometric: str) -> np.ndarray:
    """One float32 plane: RGB -> ITU-R 601 luma, MONOCHROME1 inverted to MONOCHROME2."""
    if frame.ndim == 3:
        channels = frame.shape[-1]
        plane = frame[..., :3].astype(np.float32) @ _LUMA if channels >= 3 else frame[..., 0].astype(np.float32)
    else:
        plane = frame.astype(np.float32)
    if photometric == "MONOCHROME1":
        plane = plane.max() - plane
    return plane
