"""A stand-in for ``node.data.ImageSet`` built in memory from sklearn's digits.

Unit tests of the learning layer (models, trainer, privacy) use it so that they do not
depend on DICOM ingestion; it has exactly the ImageSet shape: float32 [N, 1, 8, 8]
images normalised to [-1, 1], int64 labels, and one 32-byte subject commitment per
image (several images per synthetic subject).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class DigitsImageSet:
    images: np.ndarray
    labels: np.ndarray
    subjects: tuple[bytes, ...]


def subject(i: int) -> bytes:
    """A deterministic fake 32-byte subject commitment."""
    return i.to_bytes(4, "big") * 8


@lru_cache(maxsize=4)
def digits_image_set(n: int | None = None, n_subjects: int = 120) -> DigitsImageSet:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = ((digits.images / 16.0 - 0.5) / 0.5).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    if n is not None:
        images, labels = images[:n], labels[:n]
    subjects = tuple(subject(i % n_subjects) for i in range(len(labels)))
    return DigitsImageSet(np.ascontiguousarray(images), labels, subjects)
