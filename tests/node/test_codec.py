"""Delta codec: round trips, canonical bytes, and rejection of hostile payloads."""

from __future__ import annotations

import io
import json
import pickle
import re
import struct
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from gossip.transfer import keccak256 as transfer_keccak256
from node.codec import (
    FORMAT_VERSION,
    RETIRED_FORMATS,
    CodecSpec,
    DeltaEncoder,
    apply_delta,
    canonical_bytes,
    decode_delta,
    payload_hash,
    read_header,
    rebind,
    topk_count,
)
from node.errors import (
    CodecError,
    EncodingError,
    HeaderMismatch,
    InvalidValues,
    MalformedPayload,
    PayloadTooLarge,
    SchemaMismatch,
    UnsupportedFormat,
)
from node.models import build_model, state_hash

SPECS = [
    CodecSpec("fp32"),
    CodecSpec("fp16"),
    CodecSpec("int8"),
    CodecSpec("topk", 0.01),
    CodecSpec("topk", 0.1),
]


def _states(seed: int = 0, scale: float = 0.01) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    base = build_model("small-cnn", seed=0).state_dict()
    gen = torch.Generator().manual_seed(seed)
    new = {k: v + scale * torch.randn(v.shape, generator=gen) for k, v in base.items()}
    return base, new


BASE, NEW = _states()
BASE_HASH = state_hash(BASE)
AUTHOR = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"  # EIP-55 checksummed
OTHER = "0xAb8483F64d9C6d1EcF9b849Ae677dD3315835cb2"


def _true_delta(new: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: new[k] - base[k] for k in base}


def _metadata(codec: str = "fp32", params: str = "{}", **overrides: str) -> dict[str, str]:
    meta = {
        "format": FORMAT_VERSION,
        "model_id": "small-cnn",
        "base_hash": BASE_HASH.hex(),
        "codec": codec,
        "params": params,
        "author": AUTHOR,
        "round": "1",
        "nonce": "0",
    }
    meta.update(overrides)
    return meta


# --- round trips ------------------------------------------------------------------------


def test_fp32_round_trip_is_exact() -> None:
    encoded = DeltaEncoder(CodecSpec("fp32"), "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)

    decoded = decode_delta(encoded.payload, BASE, model_id="small-cnn", base_hash=BASE_HASH)

    assert decoded.header.codec == CodecSpec("fp32")
    assert decoded.header.base_hash == BASE_HASH
    for name, delta in _true_delta(NEW, BASE).items():
        assert torch.equal(decoded.tensors[name], delta)
    rebuilt = apply_delta(BASE, decoded.tensors)
    assert all(torch.equal(rebuilt[k], BASE[k] + decoded.tensors[k]) for k in BASE)


@pytest.mark.parametrize(("spec", "rel_tol"), [(CodecSpec("fp16"), 1e-3), (CodecSpec("int8"), 1 / 254 + 1e-6)])
def test_quantised_round_trips_within_tolerance(spec: CodecSpec, rel_tol: float) -> None:
    encoded = DeltaEncoder(spec, "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)

    decoded = decode_delta(encoded.payload, BASE)

    for name, delta in _true_delta(NEW, BASE).items():
        err = (decoded.tensors[name] - delta).abs().max()
        assert err <= rel_tol * delta.abs().max() + 1e-7, name


def _kept_mask(payload: bytes, name: str, numel: int) -> torch.Tensor:
    bitmap = st_load(payload)[f"m/{name}"].numpy()
    return torch.from_numpy(np.unpackbits(bitmap, bitorder="little")[:numel].astype(bool))


@pytest.mark.parametrize("fraction", [0.01, 0.1, 1.0])
def test_topk_keeps_the_largest_entries_within_int8_tolerance(fraction: float) -> None:
    encoded = DeltaEncoder(CodecSpec("topk", fraction), "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)

    decoded = decode_delta(encoded.payload, BASE)

    for name, delta in _true_delta(NEW, BASE).items():
        flat, got = delta.reshape(-1), decoded.tensors[name].reshape(-1)
        kept = _kept_mask(encoded.payload, name, flat.numel())
        k = topk_count(flat.numel(), fraction)
        assert int(kept.sum()) == k
        assert torch.count_nonzero(got[~kept]) == 0
        amax = flat[kept].abs().max()
        # symmetric int8: error at most half a step (scale = amax / 127), plus float slack
        assert (got[kept] - flat[kept]).abs().max() <= amax / 254 * (1 + 1e-5), name
        if k < flat.numel():
            assert flat[~kept].abs().max() <= flat[kept].abs().min()


@pytest.mark.parametrize("fraction", [0.01, 0.1, 1.0])
def test_topk_error_feedback_loses_nothing(fraction: float) -> None:
    # sum of decoded deltas + final residual == sum of true deltas: the residual takes
    # both the unsent entries and the int8 rounding error of the sent ones
    # (fraction 1.0: everything is sent, the residual is the rounding error alone).
    encoder = DeltaEncoder(CodecSpec("topk", fraction), "small-cnn")
    sent = {k: torch.zeros_like(v) for k, v in BASE.items()}
    truth = {k: torch.zeros_like(v) for k, v in BASE.items()}
    for round_ in range(5):
        _, new = _states(seed=round_ + 1)
        payload = encoder.encode(new, BASE, BASE_HASH, author=AUTHOR, round=1).payload
        decoded = decode_delta(payload, BASE)
        for k in BASE:
            sent[k] += decoded.tensors[k]
            truth[k] += new[k] - BASE[k]
    residual = encoder.get_residual()

    for k in BASE:
        torch.testing.assert_close(sent[k] + residual[k], truth[k], atol=1e-6, rtol=0)
    assert any(float(r.abs().max()) > 0 for r in residual.values())


def test_topk_residual_is_exactly_input_minus_decoded() -> None:
    encoder = DeltaEncoder(CodecSpec("topk", 0.1), "small-cnn")
    encoder.encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)
    previous = encoder.get_residual()
    _, new2 = _states(seed=7)

    decoded = decode_delta(encoder.encode(new2, BASE, BASE_HASH, author=AUTHOR, round=1).payload, BASE)

    for k in BASE:
        x = (new2[k] - BASE[k]) + previous[k]
        assert torch.equal(encoder.get_residual()[k], x - decoded.tensors[k])


def test_topk_zero_or_subnormal_delta_sends_zeros_and_keeps_it() -> None:
    tiny_delta = {k: v + 1e-44 for k, v in BASE.items()}  # subnormal float32 steps
    for new in (BASE, tiny_delta):
        encoder = DeltaEncoder(CodecSpec("topk", 0.1), "small-cnn")
        payload = encoder.encode(new, BASE, BASE_HASH, author=AUTHOR, round=1).payload

        decoded = decode_delta(payload, BASE)

        assert all(float(t.abs().max()) == 0 for t in decoded.tensors.values())
        assert all(float(st_load(payload)[f"s/{k}"][0]) == 0 for k in BASE)
        for k in BASE:
            assert torch.equal(encoder.get_residual()[k], new[k] - BASE[k])


def test_residual_checkpoint_round_trip_resumes_identically() -> None:
    spec = CodecSpec("topk", 0.05)
    straight = DeltaEncoder(spec, "small-cnn")
    straight.encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)
    restarted = DeltaEncoder(spec, "small-cnn")
    first = DeltaEncoder(spec, "small-cnn")
    first.encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)

    restarted.set_residual(st_load(st_save(first.get_residual())))  # via safetensors bytes
    _, new2 = _states(seed=9)

    assert restarted.encode(new2, BASE, BASE_HASH, author=AUTHOR, round=1).payload == straight.encode(new2, BASE, BASE_HASH, author=AUTHOR, round=1).payload


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_encoding_is_deterministic_and_plain_safetensors(spec: CodecSpec) -> None:
    shuffled_new = dict(reversed(list(NEW.items())))

    a = DeltaEncoder(spec, "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)
    b = DeltaEncoder(spec, "small-cnn").encode(shuffled_new, BASE, BASE_HASH, author=AUTHOR, round=1)
    c = DeltaEncoder(spec, "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)

    assert a.payload == b.payload == c.payload
    assert a.delta_hash == b.delta_hash == payload_hash(a.payload)
    assert len(a.delta_hash) == 32
    assert st_load(a.payload)  # any safetensors reader opens it


def test_compression_ratios_are_what_the_formats_imply() -> None:
    sizes = {s.label: DeltaEncoder(s, "m").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1).size for s in SPECS}

    assert sizes["fp16"] < 0.55 * sizes["fp32"]
    assert sizes["int8"] < 0.30 * sizes["fp32"]
    assert sizes["topk-1%"] < 0.05 * sizes["fp32"]


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.1])
def test_topk_data_is_a_bitmap_plus_one_byte_per_kept_entry(fraction: float) -> None:
    payload = DeltaEncoder(CodecSpec("topk", fraction), "m").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1).payload
    (head_len,) = struct.unpack_from("<Q", payload)
    numels = [v.numel() for v in BASE.values()]

    data_bytes = len(payload) - 8 - head_len

    assert data_bytes == sum((n + 7) // 8 + topk_count(n, fraction) + 4 for n in numels)
    header = json.loads(payload[8 : 8 + head_len])
    assert {v["dtype"] for k, v in header.items() if k.startswith("m/")} == {"U8"}
    assert {v["dtype"] for k, v in header.items() if k.startswith("q/")} == {"I8"}


def test_encoder_rejects_mismatched_or_non_finite_states() -> None:
    encoder = DeltaEncoder(CodecSpec("fp32"), "small-cnn")
    missing = dict(NEW)
    missing.pop("classifier.3.bias")
    bad = dict(NEW)
    bad["classifier.3.bias"] = torch.full_like(NEW["classifier.3.bias"], float("nan"))

    with pytest.raises(EncodingError):
        encoder.encode(missing, BASE, BASE_HASH, author=AUTHOR, round=1)
    with pytest.raises(EncodingError):
        encoder.encode(bad, BASE, BASE_HASH, author=AUTHOR, round=1)
    with pytest.raises(EncodingError):
        DeltaEncoder(CodecSpec("fp16"), "m").encode(
            {k: v + 1e6 for k, v in NEW.items()}, BASE, BASE_HASH, author=AUTHOR, round=1
        )
    overflowing = DeltaEncoder(CodecSpec("topk", 0.1), "m")
    overflowing.set_residual({k: torch.full_like(v, 3e38) for k, v in BASE.items()})
    with pytest.raises(EncodingError, match="overflows"):
        overflowing.encode({k: v + 3e38 for k, v in BASE.items()}, BASE, BASE_HASH, author=AUTHOR, round=1)


# --- the header binds the author, the round and the nonce ------------------------------


def _split(payload: bytes) -> tuple[dict[str, object], bytes]:
    """(the JSON header, the tensor data bytes) of a payload."""
    (head_len,) = struct.unpack_from("<Q", payload)
    return json.loads(payload[8 : 8 + head_len]), payload[8 + head_len :]


def test_header_round_trip_names_author_round_and_nonce() -> None:
    encoded = DeltaEncoder(CodecSpec("int8"), "small-cnn").encode(
        NEW, BASE, BASE_HASH, author=OTHER.lower(), round=7, nonce=3
    )

    decoded = decode_delta(encoded.payload, BASE, model_id="small-cnn", base_hash=BASE_HASH, author=OTHER, round=7)

    assert (encoded.header.author, encoded.header.round, encoded.header.nonce) == (OTHER, 7, 3)
    assert decoded.header == encoded.header == read_header(encoded.payload)
    assert decoded.header.codec == CodecSpec("int8") and decoded.header.base_hash == BASE_HASH
    # the chain gives addresses in any case: the comparison ignores it
    for spelling in (OTHER.lower(), "0x" + OTHER[2:].upper()):
        decode_delta(encoded.payload, BASE, author=spelling, round=7)


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        ({"author": OTHER}, f"author: the header says '{AUTHOR}', '{OTHER}' was expected"),
        ({"round": 2}, "round: the header says 1, 2 was expected"),
    ],
    ids=["author", "round"],
)
def test_author_or_round_other_than_the_record_is_refused(
    fp32_payload: bytes, expected: dict[str, object], message: str
) -> None:
    with pytest.raises(HeaderMismatch) as caught:
        decode_delta(fp32_payload, BASE, model_id="small-cnn", **expected)  # type: ignore[arg-type]

    assert str(caught.value) == message


@pytest.mark.parametrize(
    "binding",
    [
        {"author": ""},
        {"author": "hospital-a"},
        {"author": AUTHOR.replace("B", "b", 1)},  # mixed case with a wrong checksum
        {"author": bytes.fromhex(AUTHOR[2:])},
        {"round": 0},
        {"round": -1},
        {"round": True},
        {"round": 2**64},
        {"nonce": -1},
        {"nonce": 1.0},
    ],
    ids=repr,
)
def test_encoder_refuses_a_missing_or_invalid_binding(binding: dict[str, object]) -> None:
    encoder = DeltaEncoder(CodecSpec("topk", 0.1), "small-cnn")
    encoder.encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1)
    residual = encoder.get_residual()
    kwargs: dict[str, object] = {"author": AUTHOR, "round": 2, **binding}

    with pytest.raises(EncodingError):
        encoder.encode(NEW, BASE, BASE_HASH, **kwargs)  # type: ignore[arg-type]
    assert all(torch.equal(encoder.get_residual()[k], residual[k]) for k in residual)


@pytest.mark.parametrize("spec", [CodecSpec("fp32"), CodecSpec("topk", 0.1)], ids=lambda s: s.label)
def test_rebind_changes_the_hash_and_nothing_but_the_nonce(spec: CodecSpec) -> None:
    original = DeltaEncoder(spec, "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=4)

    rebound = rebind(original.payload, 1)

    assert rebound.delta_hash != original.delta_hash
    assert rebound.delta_hash == payload_hash(rebound.payload)
    assert rebound.header == replace(original.header, nonce=1) == read_header(rebound.payload)
    (old_head, old_data), (new_head, new_data) = _split(original.payload), _split(rebound.payload)
    assert new_data == old_data  # the tensors, byte for byte
    assert new_head["__metadata__"] == dict(old_head["__metadata__"], nonce="1")  # type: ignore[arg-type]
    assert {k: v for k, v in new_head.items() if k != "__metadata__"} == {
        k: v for k, v in old_head.items() if k != "__metadata__"
    }
    again = decode_delta(rebound.payload, BASE, author=AUTHOR, round=4)
    first = decode_delta(original.payload, BASE)
    assert all(torch.equal(again.tensors[k], first.tensors[k]) for k in first.tensors)
    # canonical: the same bytes as encoding with that nonce, and back again
    direct = DeltaEncoder(spec, "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=4, nonce=1)
    assert direct.payload == rebound.payload
    assert rebind(rebound.payload, 0).payload == original.payload


def test_rebind_refuses_the_same_nonce_a_bad_nonce_or_a_bad_payload(fp32_payload: bytes) -> None:
    with pytest.raises(EncodingError, match="already carries nonce 0"):
        rebind(fp32_payload, 0)
    with pytest.raises(EncodingError, match="nonce"):
        rebind(fp32_payload, -1)
    with pytest.raises(MalformedPayload):
        rebind(fp32_payload[:-4], 1)
    retired = canonical_bytes(_true_delta(NEW, BASE), _metadata(format="medgossip-delta/2"))
    with pytest.raises(UnsupportedFormat, match="retired"):
        rebind(retired, 1)


# --- hostile payloads -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fp32_payload() -> bytes:
    return DeltaEncoder(CodecSpec("fp32"), "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1).payload


def _golden_states() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Small states of exact binary fractions: the same floats on every machine."""

    def ramp(n: int, mul: int, off: int) -> torch.Tensor:
        return torch.tensor([((i * mul) % 101 - off) / 64 for i in range(n)], dtype=torch.float32)

    base = {"conv.weight": ramp(24, 37, 50).reshape(2, 3, 4), "fc.bias": ramp(5, 11, 20), "steps": torch.tensor(3)}
    new = {
        "conv.weight": base["conv.weight"] + ramp(24, 53, 47).reshape(2, 3, 4) / 128,
        "fc.bias": base["fc.bias"] - ramp(5, 29, 33) / 256,
        "steps": torch.tensor(4),
    }
    return base, new


# The IDs peers have recorded on chain: a change here is a new wire format (a new
# FORMAT_VERSION), never a refactoring. Second column: the next round (round 2), which for
# top-k also carries the error-feedback residual of the first. (The same tensors under a
# medgossip-delta/2 header hashed to c2e4570d..., c98b6a3b..., 849af306..., fc443d0a...,
# 0fe9fe0c...: /3 changed the header only.)
GOLDEN_HASHES = {
    "fp32": (
        "59bb6f5dac87773c0d55b3cc4ddde0e27f22ea9be66bfaee6c3502431939ad5a",
        "f995c2cb939f291b9be83c1adc8a7932c5fd4e838fe0b4a2f65eb6542e19b356",
    ),
    "fp16": (
        "77594bb73cd5eb4fc109f7445adbd24821627e8fac97064d7247d177bce422da",
        "746c6343d31b5c8bf78b1febab24e20397f9646ecf8a4807d6aae3d591c8aef0",
    ),
    "int8": (
        "fc9661fbc4f9cc6075e199066054065ba6f9649b4f7d533f63494d5b0c60bd26",
        "dc24510135ca48fc06d75cbe2882011ebe5b5f7bfcb8343fb925647d91ad9b81",
    ),
    "topk-10%": (
        "0f7ed89651283bfe1b4a209a674c24e100c83f0ee50be9087eedd33eb7c848e5",
        "4f073e2289ee3e49e01f90de793954df34cec603d6daae48152f1799b7da8b7d",
    ),
    "topk-50%": (
        "f9d4931f7cf5ca27170bbbb0bd8929121b6a1408403a978b82b2019cf1fe3de5",
        "c7bd5188925b9376bf40c9a8e2c9c5a5f330d47055be135eba9a6acb9674dcd1",
    ),
}


@pytest.mark.parametrize(
    "spec", [CodecSpec("fp32"), CodecSpec("fp16"), CodecSpec("int8"), CodecSpec("topk", 0.1), CodecSpec("topk", 0.5)],
    ids=lambda s: s.label,
)
def test_wire_format_and_delta_ids_are_pinned(spec: CodecSpec) -> None:
    base, new = _golden_states()
    encoder = DeltaEncoder(spec, "golden")

    first = encoder.encode(new, base, bytes(range(32)), author=AUTHOR, round=1)
    second = encoder.encode(new, base, bytes(range(32)), author=AUTHOR, round=2)

    assert (first.delta_hash.hex(), second.delta_hash.hex()) == GOLDEN_HASHES[spec.label]
    # The ID the encoder records is the one the transport checks the bytes against.
    assert first.delta_hash == payload_hash(first.payload) == transfer_keccak256(first.payload)


@pytest.mark.parametrize("cut", [0, 5, 8, 100, -1, -4000])
def test_truncated_payload_is_rejected(fp32_payload: bytes, cut: int) -> None:
    with pytest.raises(MalformedPayload):
        decode_delta(fp32_payload[:cut], BASE)


def test_trailing_bytes_are_rejected(fp32_payload: bytes) -> None:
    with pytest.raises(MalformedPayload):
        decode_delta(fp32_payload + b"\x00" * 4, BASE)


def test_oversized_payload_is_rejected_before_parsing(fp32_payload: bytes) -> None:
    with pytest.raises(PayloadTooLarge):
        decode_delta(fp32_payload, BASE, max_bytes=len(fp32_payload) - 1)
    with pytest.raises(PayloadTooLarge):
        decode_delta(b"\x00" * (1024 + 1), BASE, max_bytes=1024)


def test_oversized_header_is_rejected(fp32_payload: bytes) -> None:
    huge = struct.pack("<Q", 50 * 1024 * 1024) + fp32_payload[8:]

    with pytest.raises(MalformedPayload, match="header length"):
        decode_delta(huge, BASE)


def test_pickle_payloads_are_rejected_and_never_executed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "executed"

    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    pickled = pickle.dumps({"features.0.weight": Boom()})
    buffer = io.BytesIO()
    torch.save(_true_delta(NEW, BASE), buffer)

    for payload in (pickled, buffer.getvalue()):
        with pytest.raises(MalformedPayload):
            decode_delta(payload, BASE)
    assert not marker.exists()


def test_non_canonical_safetensors_is_rejected() -> None:
    # safetensors.torch.save orders tensors by dtype and metadata randomly: valid
    # safetensors, but not our canonical form (one content must have one hash).
    tensors = {"b": torch.zeros(2, dtype=torch.int8), "a": torch.zeros(3)}
    raw = st_save(tensors, metadata=_metadata())

    with pytest.raises(CodecError):
        decode_delta(raw, BASE)


def test_wrong_shape_is_rejected() -> None:
    other = build_model("small-cnn", num_classes=9, seed=0).state_dict()
    moved = {k: v + 0.01 for k, v in other.items()}
    payload = DeltaEncoder(CodecSpec("fp32"), "small-cnn").encode(moved, other, BASE_HASH, author=AUTHOR, round=1).payload

    with pytest.raises(SchemaMismatch, match="shape"):
        decode_delta(payload, BASE)


def test_wrong_dtype_is_rejected() -> None:
    as_fp64 = {k: v.double() for k, v in _true_delta(NEW, BASE).items()}
    payload = canonical_bytes(as_fp64, _metadata())

    with pytest.raises(SchemaMismatch, match="dtype"):
        decode_delta(payload, BASE)


@pytest.mark.parametrize("tag", [["F32"], {"F32": 1}, 4, None])
def test_non_string_dtype_tag_is_a_codec_error(tag: object) -> None:
    tensor = torch.zeros(2)
    header = {
        "__metadata__": _metadata(),
        "w": {"data_offsets": [0, 8], "dtype": tag, "shape": [2]},
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii")
    head += b" " * (-len(head) % 8)
    payload = struct.pack("<Q", len(head)) + head + tensor.numpy().tobytes()

    with pytest.raises(SchemaMismatch, match="dtype"):
        decode_delta(payload, {"w": tensor})


def test_extra_and_missing_keys_are_rejected() -> None:
    delta = _true_delta(NEW, BASE)
    extra = dict(delta, **{"evil.weight": torch.zeros(3)})
    missing = dict(delta)
    missing.pop("features.0.bias")

    for tensors in (extra, missing):
        with pytest.raises(SchemaMismatch, match="names differ"):
            decode_delta(canonical_bytes(tensors, _metadata()), BASE)


@pytest.mark.parametrize(
    "meta",
    [
        _metadata(format="medgossip-delta/99"),
        _metadata(codec="zip"),
        _metadata(codec="topk", params='{"fraction":2.0}'),
        _metadata(codec="topk", params='{"fraction":0.1,"x":1}'),
        _metadata(codec="fp16", params='{"fraction":0.1}'),
        _metadata(base_hash="zz"),
        {"format": FORMAT_VERSION},
        _metadata(author=AUTHOR.lower()),  # not checksummed: two spellings, two hashes
        _metadata(author=AUTHOR.replace("B", "b", 1)),  # wrong checksum
        _metadata(author=AUTHOR[2:]),
        _metadata(author=""),
        _metadata(author="0x" + "g" * 40),
        _metadata(round="0"),
        _metadata(round="01"),
        _metadata(round="-1"),
        _metadata(round=" 1"),
        _metadata(round="1.0"),
        _metadata(round=str(2**64)),
        _metadata(round="١"),  # an Arabic-Indic digit: str.isdigit() says yes
        _metadata(nonce="-1"),
        _metadata(nonce="00"),
        _metadata(nonce=""),
        {k: v for k, v in _metadata().items() if k != "nonce"},
        _metadata(extra="1"),
    ],
)
def test_bad_headers_are_rejected(meta: dict[str, str]) -> None:
    payload = canonical_bytes(_true_delta(NEW, BASE), meta)

    with pytest.raises(UnsupportedFormat):
        decode_delta(payload, BASE)


def test_unexpected_model_or_base_is_rejected(fp32_payload: bytes) -> None:
    with pytest.raises(HeaderMismatch, match="model_id: the header says 'small-cnn', 'resnet18' was expected"):
        decode_delta(fp32_payload, BASE, model_id="resnet18")
    with pytest.raises(HeaderMismatch, match=f"base_hash: the header says '{BASE_HASH.hex()[:20]}"):
        decode_delta(fp32_payload, BASE, base_hash=b"\x01" * 32)


def test_nan_and_inf_values_are_rejected() -> None:
    for value in (float("nan"), float("inf")):
        delta = _true_delta(NEW, BASE)
        delta["features.0.bias"][3] = value
        with pytest.raises(InvalidValues):
            decode_delta(canonical_bytes(delta, _metadata()), BASE)


def _topk_tensors(fraction: float) -> dict[str, torch.Tensor]:
    payload = DeltaEncoder(CodecSpec("topk", fraction), "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1).payload
    return dict(st_load(payload))


TOPK_META = _metadata("topk", '{"fraction":0.1}')


def _decode_topk(tensors: dict[str, torch.Tensor]) -> None:
    decode_delta(canonical_bytes(tensors, TOPK_META), BASE)


def _set_bit(bitmap: torch.Tensor, bit: int, value: bool) -> torch.Tensor:
    raw = bitmap.clone()
    byte, mask = bit // 8, 1 << (bit % 8)
    raw[byte] = (int(raw[byte]) | mask) if value else (int(raw[byte]) & ~mask)
    return raw


def test_re_encoded_topk_tensors_decode_identically() -> None:
    # the mutation tests below start from a payload the decoder accepts
    payload = canonical_bytes(_topk_tensors(0.1), TOPK_META)

    assert payload == DeltaEncoder(CodecSpec("topk", 0.1), "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1).payload
    decode_delta(payload, BASE)


@pytest.mark.parametrize("mutation", ["extra_bit", "missing_bit", "padding_bit"])
def test_bad_topk_bitmaps_are_rejected(mutation: str) -> None:
    tensors = _topk_tensors(0.1)
    name = "classifier.3.bias"  # 10 entries: 2 bytes, 6 padding bits, k = 1
    bitmap = tensors[f"m/{name}"]
    kept = int(np.flatnonzero(np.unpackbits(bitmap.numpy(), bitorder="little"))[0])
    if mutation == "extra_bit":
        bitmap = _set_bit(bitmap, (kept + 1) % 10, True)
    elif mutation == "missing_bit":
        bitmap = _set_bit(bitmap, kept, False)
    else:  # same popcount, but the bit sits in the padding
        bitmap = _set_bit(_set_bit(bitmap, kept, False), 10, True)
    tensors[f"m/{name}"] = bitmap

    with pytest.raises(InvalidValues, match="padding" if mutation == "padding_bit" else "marks"):
        _decode_topk(tensors)


@pytest.mark.parametrize(
    ("name", "replacement"),
    [
        ("m/classifier.1.weight", torch.zeros(40960 // 8 + 1, dtype=torch.uint8)),  # wrong size
        ("m/classifier.1.weight", torch.zeros(40960 // 8, dtype=torch.int8)),  # wrong dtype
        ("q/classifier.1.weight", torch.zeros(4096, dtype=torch.int32)),  # wrong dtype
        ("q/classifier.1.weight", torch.zeros(4095, dtype=torch.int8)),  # k - 1 values
        ("s/classifier.1.weight", torch.zeros(2)),
    ],
)
def test_wrong_topk_shapes_or_dtypes_are_rejected(name: str, replacement: torch.Tensor) -> None:
    tensors = _topk_tensors(0.1)
    tensors[name] = replacement

    with pytest.raises(SchemaMismatch):
        _decode_topk(tensors)


def test_int32_index_layout_under_topk_is_rejected() -> None:
    tensors = {}
    for name, v in _true_delta(NEW, BASE).items():
        k = topk_count(v.numel(), 0.1)
        tensors[f"i/{name}"] = torch.arange(k, dtype=torch.int32)
        tensors[f"v/{name}"] = v.reshape(-1)[:k].clone()

    with pytest.raises(SchemaMismatch, match="names differ"):
        _decode_topk(tensors)


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [("medgossip-delta/1", "its top-k layout"), ("medgossip-delta/2", "its header does not name the author and round")],
)
def test_retired_format_is_rejected_cleanly(fmt: str, reason: str) -> None:
    # A retired payload as its peers wrote it: the /1 and /2 header had no author, round, nonce.
    old = {k: v for k, v in _metadata(format=fmt).items() if k not in ("author", "round", "nonce")}
    payload = canonical_bytes(_true_delta(NEW, BASE), old)

    with pytest.raises(UnsupportedFormat, match=re.escape(f"{fmt!r} is retired ({reason}")) as caught:
        decode_delta(payload, BASE)
    assert f"reads {FORMAT_VERSION!r} only" in str(caught.value)
    assert "same version" in str(caught.value)
    assert list(RETIRED_FORMATS) == ["medgossip-delta/1", "medgossip-delta/2"]
    assert FORMAT_VERSION == "medgossip-delta/3"


def _with_q(tensors: dict[str, torch.Tensor], name: str, index: int, value: int) -> torch.Tensor:
    q = tensors[name].clone()
    q[index] = value
    return q


@pytest.mark.parametrize(
    "mutation",
    ["negative", "negative_zero", "nan", "inf", "subnormal", "overflow", "minus_128",
     "zero_scale_nonzero_q", "not_scaled_to_127"],
)
def test_bad_topk_scale_or_values_are_rejected(mutation: str) -> None:
    tensors = _topk_tensors(0.1)
    name = "classifier.1.weight"
    s, q = f"s/{name}", f"q/{name}"
    replacements = {
        "negative": (s, torch.tensor([-1e-3])),
        "negative_zero": (s, torch.tensor([-0.0])),
        "nan": (s, torch.tensor([float("nan")])),
        "inf": (s, torch.tensor([float("inf")])),
        "subnormal": (s, torch.tensor([1e-40])),
        "overflow": (s, torch.tensor([3e38])),  # 127 * 3e38 is inf in float32
        "minus_128": (q, _with_q(tensors, q, 0, -128)),
        "zero_scale_nonzero_q": (s, torch.tensor([0.0])),
        "not_scaled_to_127": (q, torch.div(tensors[q], 2, rounding_mode="trunc")),
    }
    key, value = replacements[mutation]
    tensors[key] = value

    with pytest.raises(InvalidValues):
        _decode_topk(tensors)


def test_bad_int8_scale_or_value_is_rejected() -> None:
    payload = DeltaEncoder(CodecSpec("int8"), "small-cnn").encode(NEW, BASE, BASE_HASH, author=AUTHOR, round=1).payload
    for name, value in (("s/features.0.bias", torch.tensor([-1.0])), ("q/features.0.bias", None)):
        tensors = dict(st_load(payload))
        if value is None:
            q = tensors[name].clone()
            q[0] = -128
            value = q
        tensors[name] = value
        with pytest.raises(InvalidValues):
            decode_delta(canonical_bytes(tensors, _metadata("int8")), BASE)


@pytest.fixture(scope="module")
def tiny() -> tuple[dict[str, torch.Tensor], bytes]:
    reference = {"w": torch.zeros(4, 3), "b": torch.zeros(3)}
    new = {"w": torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), "b": torch.ones(3)}
    payload = DeltaEncoder(CodecSpec("topk", 0.5), "tiny").encode(new, reference, b"\x00" * 32, author=AUTHOR, round=1).payload
    return reference, payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_corruption_only_ever_raises_codec_errors(
    tiny: tuple[dict[str, torch.Tensor], bytes], data: st.DataObject
) -> None:
    reference, payload = tiny
    raw = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))

    try:
        decoded = decode_delta(bytes(raw[:cut]), reference)
    except CodecError:
        return
    # Whatever got through is well-formed and finite.
    assert set(decoded.tensors) == set(reference)
    assert all(torch.isfinite(t).all() for t in decoded.tensors.values())


def test_header_json_is_what_the_docs_say(fp32_payload: bytes) -> None:
    (head_len,) = struct.unpack_from("<Q", fp32_payload)
    header = json.loads(fp32_payload[8 : 8 + head_len])

    assert header["__metadata__"] == {
        "author": AUTHOR,
        "base_hash": BASE_HASH.hex(),
        "codec": "fp32",
        "format": FORMAT_VERSION,
        "model_id": "small-cnn",
        "nonce": "0",
        "params": "{}",
        "round": "1",
    }
