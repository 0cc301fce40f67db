"""Models every peer can rebuild bit-for-bit from a seed, and their canonical hash.

Every peer builds the genesis model locally with ``build_model(name, ..., seed)`` and
checks ``state_hash(model.state_dict())`` against the hash recorded on chain, so two
things must hold on every machine running the pinned torch build:

* construction is deterministic: weights are drawn inside a forked RNG seeded with
  ``seed`` (the caller's global torch RNG is left untouched);
* the hash is canonical: keccak256 of safetensors bytes written with sorted keys,
  contiguous little-endian CPU tensors and fixed metadata (see ``node.codec``).

No BatchNorm anywhere: opacus (DP-SGD) rejects it and its running statistics would leak
per-batch information; GroupNorm normalises per sample instead.

    small-cnn   SmallCNN, ~100k parameters, the default model
    resnet18    ResNet-18 layout (GroupNorm, 3x3 stem, no max-pool), ~11M parameters,
                for benchmarks
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import torch
from torch import Tensor, nn

from node.codec import canonical_bytes
from node.errors import TrainingError

__all__ = [
    "MODEL_NAMES",
    "ResNet18",
    "SmallCNN",
    "build_model",
    "count_parameters",
    "state_hash",
]

MODEL_NAMES: Final = ("small-cnn", "resnet18")

_STATE_FORMAT: Final = "medgossip-state/1"


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (channels must divide evenly)."""
    groups = 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(groups, channels)


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks with GroupNorm, global 2x2 pooling, a two-layer head.

    Accepts any square 1-channel input of at least 2x2 (the pooling is adaptive), so the
    same architecture serves 8x8 digits and larger DICOM crops.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            _group_norm(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            _group_norm(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            _group_norm(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((2, 2)),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, 160),
            nn.ReLU(),
            nn.Linear(160, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _group_norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.norm2 = _group_norm(planes)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                _group_norm(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (2-2-2-2 basic blocks, 64..512 channels) with GroupNorm.

    The stem is a single 3x3 stride-1 convolution without max-pooling (small images);
    global average pooling makes it input-size agnostic.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), _group_norm(64), nn.ReLU()
        )
        layers: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(_BasicBlock(in_planes, planes, stride))
            layers.append(_BasicBlock(planes, planes, 1))
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def build_model(
    name: str = "small-cnn", num_classes: int = 10, in_size: int = 8, seed: int = 0
) -> nn.Module:
    """Build model ``name`` with weights drawn deterministically from ``seed``.

    Same arguments -> identical weights -> identical ``state_hash`` (on the pinned torch
    build). ``in_size`` is validated here (the models themselves are size-agnostic) so a
    mismatch fails at construction, not at the first batch. Raises ``TrainingError`` for
    an unknown name or impossible sizes.
    """
    if num_classes < 2:
        raise TrainingError(f"num_classes must be >= 2, got {num_classes}")
    if name == "small-cnn":
        if in_size < 2:
            raise TrainingError(f"small-cnn needs in_size >= 2, got {in_size}")
        factory = SmallCNN
    elif name == "resnet18":
        if in_size < 1:
            raise TrainingError(f"resnet18 needs in_size >= 1, got {in_size}")
        factory = ResNet18
    else:
        raise TrainingError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(num_classes=num_classes)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def state_hash(state_dict: Mapping[str, Tensor]) -> bytes:
    """keccak256 of the canonical safetensors bytes of ``state_dict`` (32 bytes)."""
    from eth_hash.auto import keccak

    return bytes(keccak(canonical_bytes(state_dict, {"format": _STATE_FORMAT})))
