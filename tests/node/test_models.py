"""Models: deterministic genesis from a seed, canonical state hash, no BatchNorm."""

from __future__ import annotations

import struct

import pytest
import torch
from safetensors.torch import load as st_load
from torch import nn

from node.codec import canonical_bytes
from node.errors import TrainingError
from node.models import build_model, count_parameters, state_hash


def test_same_seed_gives_identical_weights_and_hash() -> None:
    a = build_model("small-cnn", num_classes=10, in_size=8, seed=7)
    b = build_model("small-cnn", num_classes=10, in_size=8, seed=7)
    other = build_model("small-cnn", num_classes=10, in_size=8, seed=8)

    assert state_hash(a.state_dict()) == state_hash(b.state_dict())
    assert state_hash(a.state_dict()) != state_hash(other.state_dict())
    assert len(state_hash(a.state_dict())) == 32


def test_build_model_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_state_hash_is_canonical_and_pinned() -> None:
    # Pinned bytes: a peer on another machine must compute the same hash.
    state = {
        "b": torch.tensor([1.0, -2.0, 0.5]),
        "a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
    }
    reordered = {"a": state["a"].t().contiguous().t(), "b": state["b"]}  # non-contiguous

    raw = canonical_bytes(state, {"format": "medgossip-state/1"})
    (head_len,) = struct.unpack_from("<Q", raw)

    assert raw[8 : 8 + head_len].rstrip(b" ") == (
        b'{"__metadata__":{"format":"medgossip-state/1"},'
        b'"a":{"data_offsets":[0,24],"dtype":"F32","shape":[2,3]},'
        b'"b":{"data_offsets":[24,36],"dtype":"F32","shape":[3]}}'
    )
    assert state_hash(state).hex() == (
        "33623445f48c0f85a8ab0942ef3ff96266a90ac5edbda69de87aec4f60fcd99b"
    )
    assert state_hash(reordered) == state_hash(state)
    loaded = st_load(raw)  # ordinary safetensors for any reader
    assert torch.equal(loaded["a"], state["a"]) and torch.equal(loaded["b"], state["b"])


def test_state_hash_changes_with_any_value() -> None:
    state = build_model(seed=0).state_dict()
    before = state_hash(state)
    state["classifier.3.bias"][0] += 1e-6
    assert state_hash(state) != before


@pytest.mark.parametrize("name", ["small-cnn", "resnet18"])
def test_models_use_groupnorm_and_pass_opacus_validation(name: str) -> None:
    from opacus.validators import ModuleValidator

    model = build_model(name, num_classes=10, in_size=8, seed=0)

    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert ModuleValidator.validate(model, strict=False) == []
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_small_cnn_size_and_configurable_input() -> None:
    model = build_model("small-cnn", num_classes=4, in_size=28, seed=0)

    assert 80_000 <= count_parameters(model) <= 120_000
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 4)


def test_unknown_model_is_a_training_error() -> None:
    with pytest.raises(TrainingError, match="unknown model"):
        build_model("vgg")
