"""``int8``: symmetric per-tensor quantisation, delta ~= q * s (a quarter of fp32).

    q/NAME  int8 values in [-127, 127]
    s/NAME  float32 [1], the scale max|delta| / 127 (0 for an all-zero delta)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from node.codec.base import INT8_MAX, Codec, Encoded, Entries, Reader, refuse_int8_min
from node.errors import InvalidValues

if TYPE_CHECKING:
    from node.codec.header import CodecSpec


class Int8Codec(Codec):
    name: ClassVar[str] = "int8"

    def encode(self, name: str, delta: Tensor, spec: CodecSpec, residual: Tensor | None) -> Encoded:
        amax = float(delta.abs().max()) if delta.numel() else 0.0
        scale = amax / INT8_MAX if amax > 0 else 0.0
        if scale > 0:
            q = torch.round(delta / scale).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
        else:
            q = torch.zeros_like(delta, dtype=torch.int8)
        return Encoded({f"q/{name}": q, f"s/{name}": torch.tensor([scale], dtype=torch.float32)})

    def entries(self, name: str, shape: tuple[int, ...], spec: CodecSpec) -> Entries:
        return {f"q/{name}": ("I8", shape), f"s/{name}": ("F32", (1,))}

    def decode(self, name: str, shape: tuple[int, ...], spec: CodecSpec, read: Reader) -> np.ndarray:
        scale = float(read(f"s/{name}")[0])
        if not math.isfinite(scale) or scale < 0:
            raise InvalidValues(f"{name}: int8 scale {scale} is not finite and >= 0")
        q = read(f"q/{name}")
        refuse_int8_min(name, q)
        return q.astype(np.float32) * np.float32(scale)
