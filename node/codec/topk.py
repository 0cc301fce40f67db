"""``topk``: the largest entries of delta + residual, as a bitmap and int8 values.

For a model tensor ``NAME`` of ``numel`` entries and k = ``topk_count(numel, fraction)``:

    m/NAME  uint8 bitmap of the kept flat positions (``np.packbits`` little bit order,
            ceil(numel/8) bytes, padding bits zero, popcount exactly k)
    q/NAME  the k kept values in position order, int8 in [-127, 127]
    s/NAME  float32 [1] scale, x ~= q * s at the kept positions: s = max|kept| / 127,
            or 0 with q all zero when that is not a normal float32

Error feedback: the encoder keeps residual = x - decoded, where x = delta + residual,
so both the dropped entries and the quantisation error of the kept ones are sent later.
The decoder enforces max|q| == 127 for a non-zero scale and a normal scale, so one delta
has exactly one byte string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Final

import numpy as np
import torch
from torch import Tensor

from node.codec.base import INT8_MAX, Codec, Encoded, Entries, Reader, refuse_int8_min
from node.errors import EncodingError, InvalidValues, UnsupportedFormat

if TYPE_CHECKING:
    from node.codec.header import CodecSpec

__all__ = ["TopKCodec", "topk_count"]

_F32_TINY: Final = float(np.finfo(np.float32).tiny)  # smallest normal float32


def topk_count(numel: int, fraction: float) -> int:
    """Entries kept per tensor by top-k: ceil(fraction * numel), at least 1 (0 if empty)."""
    if numel <= 0:
        return 0
    return max(1, min(numel, math.ceil(fraction * numel - 1e-9)))


class TopKCodec(Codec):
    name: ClassVar[str] = "topk"

    def check(self, spec: CodecSpec) -> None:
        if not (0.0 < spec.topk_fraction <= 1.0):
            raise UnsupportedFormat(f"topk fraction must be in (0, 1], got {spec.topk_fraction}")

    def params(self, spec: CodecSpec) -> dict[str, float]:
        return {"fraction": spec.topk_fraction}

    def spec_fields(self, params: Mapping[str, object]) -> dict[str, float]:
        fraction = params.get("fraction")
        if set(params) != {"fraction"} or type(fraction) not in (int, float):
            raise UnsupportedFormat("topk needs exactly one numeric param 'fraction'")
        return {"topk_fraction": float(fraction)}  # type: ignore[arg-type]

    def label(self, spec: CodecSpec) -> str:
        return f"topk-{spec.topk_fraction * 100:g}%"

    def encode(self, name: str, delta: Tensor, spec: CodecSpec, residual: Tensor | None) -> Encoded:
        flat = delta.reshape(-1)
        if residual is not None:
            if residual.shape != delta.shape:
                raise EncodingError(f"{name}: residual shape {tuple(residual.shape)} is stale")
            flat = flat + residual.reshape(-1)
            if not bool(torch.isfinite(flat).all()):
                raise EncodingError(f"{name}: delta + residual overflows float32")
        numel = flat.numel()
        k = topk_count(numel, spec.topk_fraction)
        # Ties are broken by index (stable sort) so the choice is deterministic.
        order = torch.sort(flat.abs(), descending=True, stable=True).indices[:k]
        mask = torch.zeros(numel, dtype=torch.bool)
        mask[order] = True
        kept = flat[mask]  # in increasing position order
        q, scale = _quantise_kept(kept)
        sent = torch.zeros(numel, dtype=torch.float32)
        # Exactly what decode rebuilds (float32 q * float32 scale).
        sent[mask] = q.to(torch.float32) * torch.tensor(scale, dtype=torch.float32)
        bitmap = np.packbits(mask.numpy(), bitorder="little")
        tensors = {
            f"m/{name}": torch.from_numpy(bitmap),
            f"q/{name}": q,
            f"s/{name}": torch.tensor([scale], dtype=torch.float32),
        }
        return Encoded(tensors, residual=(flat - sent).reshape(delta.shape))

    def entries(self, name: str, shape: tuple[int, ...], spec: CodecSpec) -> Entries:
        numel = math.prod(shape)
        return {
            f"m/{name}": ("U8", ((numel + 7) // 8,)),
            f"q/{name}": ("I8", (topk_count(numel, spec.topk_fraction),)),
            f"s/{name}": ("F32", (1,)),
        }

    def decode(self, name: str, shape: tuple[int, ...], spec: CodecSpec, read: Reader) -> np.ndarray:
        numel = math.prod(shape)
        k = topk_count(numel, spec.topk_fraction)
        mask = _read_bitmap(name, read(f"m/{name}"), numel, k)
        scale = _read_scale(name, float(read(f"s/{name}")[0]))
        q = read(f"q/{name}")
        refuse_int8_min(name, q)
        qmax = int(np.abs(q.astype(np.int16)).max()) if q.size else 0
        if scale == 0.0 and qmax != 0:
            raise InvalidValues(f"{name}: top-k scale is 0 but values are not all zero")
        if scale > 0.0 and qmax != INT8_MAX:
            raise InvalidValues(f"{name}: top-k values not scaled to max |q| == 127 (non-canonical)")
        dense = np.zeros(numel, dtype=np.float32)
        with np.errstate(over="ignore"):  # overflow -> inf, which the caller rejects
            dense[mask] = q.astype(np.float32) * np.float32(scale)
        return dense.reshape(shape)


def _quantise_kept(kept: Tensor) -> tuple[Tensor, float]:
    """Symmetric int8 quantisation of the kept values: (q in [-127, 127], scale).

    The scale is a float32 value (``max|kept| / 127`` rounded to float32), so that
    ``max|q| == 127`` whenever the scale is non-zero; when it would not be a normal
    float32 (all kept values zero or vanishingly small) it is 0 and q is all zero, and
    error feedback keeps the values for a later round.
    """
    amax = float(kept.abs().max()) if kept.numel() else 0.0
    scale = float(np.float32(amax / INT8_MAX))
    if not scale >= _F32_TINY:
        return torch.zeros(kept.shape, dtype=torch.int8), 0.0
    q = torch.round(kept / scale).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def _read_bitmap(name: str, bitmap: np.ndarray, numel: int, k: int) -> np.ndarray:
    """The kept-position mask: canonical padding, exactly k bits set."""
    bits = np.unpackbits(bitmap, bitorder="little")
    if bool(bits[numel:].any()):
        raise InvalidValues(f"{name}: top-k bitmap has non-zero padding bits")
    mask = bits[:numel].astype(bool)
    count = int(np.count_nonzero(mask))
    if count != k:
        raise InvalidValues(f"{name}: top-k bitmap marks {count} positions where {k} are expected")
    return mask


def _read_scale(name: str, scale: float) -> float:
    if not math.isfinite(scale) or math.copysign(1.0, scale) < 0:
        raise InvalidValues(f"{name}: top-k scale {scale} is not finite and >= +0")
    if 0.0 < scale < _F32_TINY:
        raise InvalidValues(f"{name}: top-k scale {scale} is subnormal (non-canonical)")
    return scale
