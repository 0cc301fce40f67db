"""What a codec is: one object that encodes, lays out and decodes a model tensor.

A codec is stateless and shared (one instance in ``node.codec.CODECS``); its settings
come in a ``CodecSpec`` and its per-peer state (the top-k residual) is handed in and
returned by the encoder. Three methods cover a codec's whole wire format, so each codec
lives in one module:

    encode    one model tensor's delta -> the payload tensors written for it
    entries   the names, safetensors dtypes and shapes those tensors must have
    decode    the payload tensors, already checked against ``entries`` -> dense float32

``decode`` reads untrusted bytes: it checks every value it relies on and raises a
``node.errors.CodecError`` subclass, never anything else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final

import numpy as np
from torch import Tensor

from node.errors import InvalidValues, UnsupportedFormat

if TYPE_CHECKING:
    from node.codec.header import CodecSpec

__all__ = ["INT8_MAX", "Codec", "Encoded", "Entries", "Reader", "refuse_int8_min"]

INT8_MAX: Final = 127
"""Symmetric int8 quantisation uses [-127, 127]; -128 is refused on decode."""

Entries = dict[str, tuple[str, tuple[int, ...]]]
"""payload tensor name -> (safetensors dtype tag, shape)."""

Reader = Callable[[str], np.ndarray]
"""Reads one payload tensor (already checked against ``entries``) as a numpy view."""


@dataclass(frozen=True)
class Encoded:
    """What a codec writes for one model tensor, and the error it leaves for later."""

    tensors: dict[str, Tensor]
    residual: Tensor | None = None
    """what was not sent (error feedback), or None for codecs that keep nothing."""


class Codec(ABC):
    """One delta codec: its name, its parameters and its three halves of the format."""

    name: ClassVar[str]
    exact: ClassVar[bool] = False
    """Whether decoding gives back the delta bit for bit (only then may an author apply
    its own delta rather than what its payload carries: `Learner.train_round`)."""

    def check(self, spec: CodecSpec) -> None:
        """Raise ``UnsupportedFormat`` if ``spec`` holds parameters this codec refuses."""

    def params(self, spec: CodecSpec) -> dict[str, float]:
        """The parameters written into the payload header (canonical JSON)."""
        return {}

    def spec_fields(self, params: Mapping[str, object]) -> dict[str, float]:
        """Read header ``params`` back as ``CodecSpec`` fields (untrusted input)."""
        if params:
            raise UnsupportedFormat(f"codec {self.name!r} takes no params, got {sorted(params)}")
        return {}

    def label(self, spec: CodecSpec) -> str:
        """Short human label, e.g. ``topk-1%``."""
        return self.name

    @abstractmethod
    def encode(self, name: str, delta: Tensor, spec: CodecSpec, residual: Tensor | None) -> Encoded:
        """Encode the float32 delta of model tensor ``name`` (plus any kept ``residual``)."""

    @abstractmethod
    def entries(self, name: str, shape: tuple[int, ...], spec: CodecSpec) -> Entries:
        """The payload tensors that ``encode`` writes for a model tensor of ``shape``."""

    @abstractmethod
    def decode(self, name: str, shape: tuple[int, ...], spec: CodecSpec, read: Reader) -> np.ndarray:
        """Rebuild the dense delta of ``name`` (float32 or castable to it) from the payload."""


def refuse_int8_min(name: str, q: np.ndarray) -> None:
    """-128 has no positive twin: symmetric quantisation never writes it."""
    if bool((q == -128).any()):
        raise InvalidValues(f"{name}: int8 value -128 is outside [-127, 127]")
