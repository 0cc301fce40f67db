"""The manifest as arrays for training: :func:`load_image_set`.

Each stored (de-identified) DICOM file is read back with pydicom and turned into one
grayscale plane: palette images through their lookup table, colour images to ITU-R 601
luma, MONOCHROME1 inverted, the middle frame of a multi-frame image. The plane is
resized to ``size`` x ``size`` (area averaging when shrinking, bilinear when growing;
torch.nn.functional.interpolate) and then **standardised per image to zero mean and
unit variance** (a constant image becomes all zeros). Per-image standardisation makes
bit depth, rescale slope/intercept and window settings irrelevant across hospitals.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from node.data.manifest import Manifest
from node.errors import DataError

__all__ = ["ImageSet", "load_image_set", "preprocess"]


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images ready for a model, one subject commitment per image."""

    images: np.ndarray  # float32 [N, 1, size, size], standardised per image
    labels: np.ndarray  # int64 [N]
    subjects: tuple[bytes, ...]  # keccak256(consent token) of each image's patient

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def exclude(self, withdrawn: Iterable[bytes]) -> ImageSet:
        """The images whose subject is not in ``withdrawn``."""
        gone = frozenset(withdrawn)
        keep = np.array([s not in gone for s in self.subjects], dtype=bool)
        return ImageSet(
            images=self.images[keep],
            labels=self.labels[keep],
            subjects=tuple(s for s, k in zip(self.subjects, keep) if k),
        )


def preprocess(plane: np.ndarray, size: int) -> np.ndarray:
    """Resize one float32 [H, W] plane to [size, size] and standardise it."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))[None, None]
    h, w = plane.shape
    if (h, w) != (size, size):
        if h >= size and w >= size:
            t = F.interpolate(t, size=(size, size), mode="area")
        else:
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    out = t[0, 0].numpy().astype(np.float32)
    std = float(out.std())
    out = out - float(out.mean())
    return out / std if std > 1e-6 else np.zeros_like(out)


def load_image_set(
    data_dir: str | os.PathLike[str],
    size: int = 8,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ImageSet:
    """Read every image of ``data_dir``'s manifest: float32 [N, 1, size, size].

    Raises :class:`node.errors.ManifestError` without a manifest and
    :class:`node.errors.DataError` if a listed file cannot be read or decoded.
    """
    from node.data.dicom_io import Rejected, decode_middle_frame, read_dataset, to_grayscale

    if size < 1:
        raise DataError("size must be positive")
    root = Path(data_dir)
    entries = Manifest.load(root).entries
    images = np.zeros((len(entries), 1, size, size), dtype=np.float32)
    for i, entry in enumerate(entries):
        path = root / entry.path
        try:
            ds = read_dataset(path)
            frame = decode_middle_frame(ds)
        except Rejected as exc:
            raise DataError(f"{entry.path}: {exc}") from exc
        plane = to_grayscale(frame, str(ds.get("PhotometricInterpretation", "")))
        images[i, 0] = preprocess(plane, size)
        if progress is not None:
            progress(i + 1, len(entries))
    labels = np.array([e.label for e in entries], dtype=np.int64)
    return ImageSet(images=images, labels=labels, subjects=tuple(e.commitment for e in entries))
