"""``fp32``: the dense delta, exact.

    NAME    float32, the delta itself
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from torch import Tensor

from node.codec.base import Codec, Encoded, Entries, Reader

if TYPE_CHECKING:
    from node.codec.header import CodecSpec


class Fp32Codec(Codec):
    name: ClassVar[str] = "fp32"
    exact: ClassVar[bool] = True

    def encode(self, name: str, delta: Tensor, spec: CodecSpec, residual: Tensor | None) -> Encoded:
        return Encoded({name: delta.contiguous()})

    def entries(self, name: str, shape: tuple[int, ...], spec: CodecSpec) -> Entries:
        return {name: ("F32", shape)}

    def decode(self, name: str, shape: tuple[int, ...], spec: CodecSpec, read: Reader) -> np.ndarray:
        return read(name).astype(np.float32)
