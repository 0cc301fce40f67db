"""The manifest as arrays for training: :func:`load_image_set`.

Each stored (de-identified) DICOM file is read back with pydicom and turned into one
grayscale plane: palette images through their lookup table, colour images to ITU-R 601
luma, MONOCHROME1 inverted, the middle frame of a multi-frame image. The plane is
resized to ``size`` x ``size`` (area averaging when shrinking, bilinear when growing;
torch.nn.functional.interpolate) and then **standardised per image to zero mean and
unit variance** (a constant image becomes all zeros). Per-image standardisation makes
bit depth, rescale slope/intercept and window settings irrelevant across hospitals.

The decoded array is cached in ``DATA_DIR/cache/images-<size>.safetensors`` (never a
pickle), tagged with the SHA-256 of manifest.json: a re-ingest changes the manifest and
so invalidates the cache; a restarted peer skips decoding every file again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gossip.files import atomic_write
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
    labels = np.array([e.label for e in entries], dtype=np.int64)
    subjects = tuple(e.commitment for e in entries)
    digest = _manifest_digest(root)
    cached = _read_cache(root, size, digest, len(entries))
    if cached is not None:
        return ImageSet(images=cached, labels=labels, subjects=subjects)
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
    _write_cache(root, size, digest, images)
    return ImageSet(images=images, labels=labels, subjects=subjects)


def _manifest_digest(root: Path) -> str:
    return hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()


def _cache_path(root: Path, size: int) -> Path:
    return root / "cache" / f"images-{size}.safetensors"


def _read_cache(root: Path, size: int, digest: str, count: int) -> np.ndarray | None:
    """The cached array if it was made from this exact manifest, else None."""
    from safetensors import SafetensorError, safe_open

    path = _cache_path(root, size)
    try:
        with safe_open(str(path), framework="numpy") as f:
            if (f.metadata() or {}).get("manifest_sha256") != digest:
                return None
            images = f.get_tensor("images")
    except (OSError, SafetensorError):
        return None
    if images.shape != (count, 1, size, size) or images.dtype != np.float32:
        return None
    return images


def _write_cache(root: Path, size: int, digest: str, images: np.ndarray) -> None:
    """Best effort: a cache that cannot be written only costs the next start time."""
    from safetensors.numpy import save

    path = _cache_path(root, size)
    try:
        atomic_write(path, save({"images": images}, metadata={"manifest_sha256": digest}), mode=0o666)
    except OSError:
        return
