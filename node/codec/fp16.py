"""``fp16``: the dense delta rounded to half precision (half the bytes of fp32).

    NAME    float16, the delta rounded to the nearest half-precision value
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from node.codec.base import Codec, Encoded, Entries, Reader
from node.errors import EncodingError

if TYPE_CHECKING:
    from node.codec.header import CodecSpec


class Fp16Codec(Codec):
    name: ClassVar[str] = "fp16"

    def encode(self, name: str, delta: Tensor, spec: CodecSpec, residual: Tensor | None) -> Encoded:
        half = delta.to(torch.float16)
        if not bool(torch.isfinite(half).all()):
            raise EncodingError(f"{name}: delta overflows float16")
        return Encoded({name: half})

    def entries(self, name: str, shape: tuple[int, ...], spec: CodecSpec) -> Entries:
        return {name: ("F16", shape)}

    def decode(self, name: str, shape: tuple[int, ...], spec: CodecSpec, read: Reader) -> np.ndarray:
        return read(name).astype(np.float32)
