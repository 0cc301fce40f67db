"""Inclusion and exclusion proofs of node.proofs (DESIGN.md, format 1)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import NodeError
from node.merkle import MerkleTree, sorted_leaves
from node.proofs import (
    EXCLUSION,
    INCLUSION,
    PROOF_FORMAT,
    Proof,
    ProofFormatError,
    ProofInvalid,
    ProofLeaf,
    check,
    load_proof,
    prove,
    write_proof,
)

DELTA = keccak(b"delta")
hashes = st.binary(min_size=32, max_size=32)


def leaf(i: int) -> bytes:
    return keccak(i.to_bytes(32, "big"))


def as_int(x: bytes) -> int:
    return int.from_bytes(x, "big")


def as_bytes(i: int) -> bytes:
    return i.to_bytes(32, "big")


def flip(x: bytes) -> bytes:
    return x[:-1] + bytes([x[-1] ^ 1])


def non_members(ordered: list[bytes]) -> list[bytes]:
    """Subjects at every edge: below all, above all, right after / before each leaf."""
    members = set(ordered)
    candidates = [bytes(32), b"\xff" * 32]
    for x in ordered:
        candidates += [as_bytes(v) for v in (as_int(x) - 1, as_int(x) + 1) if 0 <= v < 2**256]
    return [c for c in candidates if c not in members]


def forged_exclusions(ordered: list[bytes], subject: bytes) -> Iterator[Proof]:
    """Every exclusion a prover could assemble from honest paths of the real tree."""
    tree = MerkleTree.build(ordered)
    n = len(ordered)
    leaves = [ProofLeaf(i, ordered[i], tuple(tree.siblings(i))) for i in range(n)]
    shapes: list[tuple[ProofLeaf, ...]] = [()]
    shapes += [(x,) for x in leaves]
    shapes += [(leaves[i], leaves[i + 1]) for i in range(n - 1)]
    for shape in shapes:
        yield Proof(EXCLUSION, subject, DELTA, tree.data_root, n, shape)


def false_subjects(proof: Proof) -> list[bytes]:
    """Subjects the proof's leaves do not speak for: a member, or one outside the gap.

    Another subject inside the same gap is excluded too, so moving the subject there is
    no lie; a verifier compares the file's subject with the one asked about, as it
    compares deltaHash with the chain. Over 0 leaves every subject is excluded.
    """
    if proof.kind == INCLUSION:
        return [flip(proof.subject)]
    commitments = [as_int(x.commitment) for x in proof.leaves]
    indices = [x.index for x in proof.leaves]

    def still_excluded(v: int) -> bool:
        if len(commitments) == 2:
            return commitments[0] < v < commitments[1]
        (c,), (i,) = commitments, indices  # one leaf: the first, the last, or both
        return (i == 0 and v < c) or (i == proof.leaf_count - 1 and v > c)

    candidates = {v for c in commitments for v in (c - 1, c, c + 1) if 0 <= v < 2**256}
    return [as_bytes(v) for v in sorted(candidates) if not still_excluded(v)]


def field_mutations(proof: Proof) -> Iterator[tuple[str, Proof]]:
    """Every single-field tampering of a proof (deltaHash aside: it binds to the chain)."""
    replace = dataclasses.replace
    for subject in false_subjects(proof):
        yield f"subject {subject.hex()}", replace(proof, subject=subject)
    yield "dataRoot", replace(proof, data_root=flip(proof.data_root))
    yield "leafCount+1", replace(proof, leaf_count=proof.leaf_count + 1)
    if proof.leaf_count:
        yield "leafCount-1", replace(proof, leaf_count=proof.leaf_count - 1)
    yield "kind", replace(proof, kind=EXCLUSION if proof.kind == INCLUSION else INCLUSION)
    yield "kind unknown", replace(proof, kind="membership")
    if len(proof.leaves) == 2:
        yield "leaves swapped", replace(proof, leaves=proof.leaves[::-1])
    for i, item in enumerate(proof.leaves):
        others = list(proof.leaves)
        del others[i]
        yield f"leaves[{i}] dropped", replace(proof, leaves=tuple(others))
        yield f"leaves[{i}] repeated", replace(proof, leaves=proof.leaves + (item,))

        def with_leaf(new: ProofLeaf, i: int = i) -> Proof:
            return replace(proof, leaves=proof.leaves[:i] + (new,) + proof.leaves[i + 1:])

        for delta in (-1, 1):
            yield f"leaves[{i}].index{delta:+d}", with_leaf(replace(item, index=item.index + delta))
        yield f"leaves[{i}].commitment", with_leaf(replace(item, commitment=flip(item.commitment)))
        yield f"leaves[{i}].siblings+1", with_leaf(replace(item, siblings=item.siblings + (DELTA,)))
        for j, sibling in enumerate(item.siblings):
            siblings = list(item.siblings)
            siblings[j] = flip(sibling)
            yield f"leaves[{i}].siblings[{j}]", with_leaf(replace(item, siblings=tuple(siblings)))
            yield f"leaves[{i}].siblings[{j}] dropped", with_leaf(
                replace(item, siblings=item.siblings[:j] + item.siblings[j + 1:])
            )


def assert_tampering_fails(proof: Proof) -> None:
    check(proof)
    for name, tampered in field_mutations(proof):
        with pytest.raises(ProofInvalid):
            check(tampered)
            pytest.fail(f"tampered {name} still verifies")


# --- membership and non-membership --------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(leaves=st.lists(hashes, max_size=40, unique=True), extra=hashes)
def test_members_have_inclusion_and_non_members_exclusion(leaves: list[bytes], extra: bytes) -> None:
    ordered = sorted_leaves(leaves)

    for member in ordered:
        proof = prove(leaves, member, DELTA)
        assert proof.kind == INCLUSION and proof.leaves[0].commitment == member
        check(proof)
        for forged in forged_exclusions(ordered, member):
            with pytest.raises(ProofInvalid):
                check(forged)

    for outsider in [*non_members(ordered), *([extra] if extra not in ordered else [])]:
        proof = prove(leaves, outsider, DELTA)
        assert proof.kind == EXCLUSION
        check(proof)
        # no inclusion: any honest path passed off as the outsider's, or kept honest
        tree = MerkleTree.build(ordered)
        for i, commitment in enumerate(ordered):
            path = tuple(tree.siblings(i))
            for claimed in (outsider, commitment):
                forged = Proof(INCLUSION, outsider, DELTA, tree.data_root, len(ordered),
                               (ProofLeaf(i, claimed, path),))
                with pytest.raises(ProofInvalid):
                    check(forged)


@settings(max_examples=60, deadline=None)
@given(leaves=st.lists(hashes, min_size=1, max_size=12, unique=True), data=st.data())
def test_property_any_tampering_fails(leaves: list[bytes], data: st.DataObject) -> None:
    ordered = sorted_leaves(leaves)
    member = data.draw(st.sampled_from(ordered))
    outsider = data.draw(st.sampled_from(non_members(ordered)))

    assert_tampering_fails(prove(leaves, member, DELTA))
    assert_tampering_fails(prove(leaves, outsider, DELTA))


# --- edge cases -----------------------------------------------------------------------


def test_zero_leaves() -> None:
    proof = prove([], leaf(1), DELTA)

    assert (proof.kind, proof.leaf_count, proof.leaves) == (EXCLUSION, 0, ())
    assert_tampering_fails(proof)
    with pytest.raises(ProofInvalid, match="0 leaves has no leaf"):
        check(dataclasses.replace(proof, leaves=(ProofLeaf(0, leaf(2), ()),)))


@pytest.mark.parametrize("side", ["below", "above"])
def test_one_leaf(side: str) -> None:
    only = as_bytes(2**255)
    subject = as_bytes(2**255 + (1 if side == "above" else -1))

    proof = prove([only], subject, DELTA)
    inclusion = prove([only], only, DELTA)

    assert proof.kind == EXCLUSION and proof.leaves == (ProofLeaf(0, only, ()),)
    assert inclusion.kind == INCLUSION and inclusion.leaves == (ProofLeaf(0, only, ()),)
    assert_tampering_fails(proof)
    assert_tampering_fails(inclusion)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8, 16, 17])
def test_below_above_and_between(n: int) -> None:
    ordered = sorted_leaves(leaf(i) for i in range(n))
    below, above = as_bytes(as_int(ordered[0]) - 1), as_bytes(as_int(ordered[-1]) + 1)

    assert [x.index for x in prove(ordered, below, DELTA).leaves] == [0]
    assert [x.index for x in prove(ordered, above, DELTA).leaves] == [n - 1]
    for i in range(n - 1):
        between = as_bytes(as_int(ordered[i]) + 1)
        proof = prove(ordered, between, DELTA)
        assert [x.index for x in proof.leaves] == [i, i + 1]
        check(proof)
    assert_tampering_fails(prove(ordered, below, DELTA))
    assert_tampering_fails(prove(ordered, above, DELTA))
    assert_tampering_fails(prove(ordered, as_bytes(as_int(ordered[n // 2]) + 1), DELTA))
    assert_tampering_fails(prove(ordered, ordered[n - 1], DELTA))


def test_gap_between_non_adjacent_leaves_is_refused() -> None:
    ordered = sorted_leaves(leaf(i) for i in range(6))
    subject = as_bytes(as_int(ordered[2]) + 1)  # lies between leaves 2 and 3
    tree = MerkleTree.build(ordered)
    wide = tuple(ProofLeaf(i, ordered[i], tuple(tree.siblings(i))) for i in (1, 4))

    with pytest.raises(ProofInvalid, match="not adjacent"):
        check(Proof(EXCLUSION, subject, DELTA, tree.data_root, 6, wide))


def test_delta_hash_is_not_checked_locally() -> None:
    # deltaHash binds the proof to a chain record; only the chain lookup can catch a change
    proof = prove([leaf(1), leaf(2)], leaf(3), DELTA)
    check(dataclasses.replace(proof, delta_hash=flip(DELTA)))
    with pytest.raises(ProofInvalid, match="deltaHash must be 32 bytes"):
        check(dataclasses.replace(proof, delta_hash=DELTA[:31]))


def test_prove_refuses_bad_lengths() -> None:
    with pytest.raises(NodeError, match="subject must be 32 bytes"):
        prove([leaf(1)], b"x", DELTA)
    with pytest.raises(NodeError, match="delta hash must be 32 bytes"):
        prove([leaf(1)], leaf(2), b"x")


# --- the file ---------------------------------------------------------------------------


def test_json_is_the_design_format() -> None:
    ordered = sorted_leaves(leaf(i) for i in range(5))
    proof = prove(ordered, as_bytes(as_int(ordered[1]) + 1), DELTA)

    obj = proof.to_json()

    assert list(obj) == ["format", "kind", "subject", "deltaHash", "dataRoot", "leafCount", "leaves"]
    assert obj["format"] == PROOF_FORMAT == "medgossip-proof/1"
    assert obj["kind"] == "exclusion" and obj["leafCount"] == 5
    assert obj["subject"] == "0x" + proof.subject.hex() and obj["deltaHash"] == "0x" + DELTA.hex()
    assert [list(x) for x in obj["leaves"]] == [["index", "commitment", "siblings"]] * 2
    assert [x["index"] for x in obj["leaves"]] == [1, 2]
    for text in [obj["subject"], obj["dataRoot"], *(s for x in obj["leaves"] for s in x["siblings"])]:
        assert text.startswith("0x") and text == text.lower() and len(text) == 66
    assert Proof.from_json(json.loads(json.dumps(obj))) == proof


@settings(max_examples=30, deadline=None)
@given(leaves=st.lists(hashes, max_size=20, unique=True), subject=hashes)
def test_property_json_round_trip(leaves: list[bytes], subject: bytes) -> None:
    proof = prove(leaves, subject, DELTA)
    assert Proof.from_json(json.loads(json.dumps(proof.to_json()))) == proof


def test_write_and_load(tmp_path: Path) -> None:
    proof = prove([leaf(i) for i in range(9)], leaf(100), DELTA)
    path = tmp_path / "proofs" / "round-3.json"

    write_proof(path, proof)

    assert load_proof(path) == proof
    assert json.loads(path.read_text(encoding="utf-8")) == proof.to_json()
    check(load_proof(path))


def _good() -> dict[str, Any]:
    ordered = sorted_leaves(leaf(i) for i in range(4))
    return prove(ordered, as_bytes(as_int(ordered[1]) + 1), DELTA).to_json()


def _edit(change: Any) -> dict[str, Any]:
    obj = _good()
    change(obj)
    return obj


H = "0x" + "ab" * 32
BAD_FILES = {
    "format": (lambda o: o.update(format="medgossip-proof/2"), "format: unknown proof format"),
    "no format": (lambda o: o.pop("format"), "missing key 'format'"),
    "missing dataRoot": (lambda o: o.pop("dataRoot"), "missing key 'dataRoot'"),
    "unexpected key": (lambda o: o.update(note="hi"), "unexpected key 'note'"),
    "kind": (lambda o: o.update(kind="membership"), "kind: must be"),
    "kind list": (lambda o: o.update(kind=[]), "kind: must be"),
    "no 0x": (lambda o: o.update(subject=H[2:] + "ab"), "subject: must be 0x and 64"),
    "uppercase": (lambda o: o.update(deltaHash=H.upper().replace("0X", "0x")), "deltaHash: must be"),
    "short hex": (lambda o: o.update(dataRoot=H[:-2]), "dataRoot: must be"),
    "not hex": (lambda o: o.update(dataRoot=H[:-1] + "g"), "dataRoot: must be"),
    "hex not str": (lambda o: o.update(subject=12), "subject: must be"),
    "negative count": (lambda o: o.update(leafCount=-1), "leafCount: must not be negative"),
    "float count": (lambda o: o.update(leafCount=4.0), "leafCount: must be an integer"),
    "bool count": (lambda o: o.update(leafCount=True), "leafCount: must be an integer"),
    "huge count": (lambda o: o.update(leafCount=2**256), "leafCount: does not fit"),
    "leaves not list": (lambda o: o.update(leaves={}), "leaves: must be a list"),
    "three leaves": (lambda o: o["leaves"].append(o["leaves"][0]), "leaves: an exclusion proof has 0 to 2"),
    "inclusion of two": (lambda o: o.update(kind="inclusion"), "leaves: an inclusion proof has exactly 1 leaf, got 2"),
    "leaf not object": (lambda o: o["leaves"].__setitem__(0, []), "leaves[0] must be a JSON object"),
    "index str": (lambda o: o["leaves"][1].update(index="2"), "leaves[1].index: must be an integer"),
    "index float": (lambda o: o["leaves"][1].update(index=2.5), "leaves[1].index: must be an integer"),
    "index negative": (lambda o: o["leaves"][0].update(index=-1), "leaves[0].index: must not be negative"),
    "commitment": (lambda o: o["leaves"][0].update(commitment="0x12"), "leaves[0].commitment: must be"),
    "sibling": (lambda o: o["leaves"][0]["siblings"].__setitem__(1, None), "leaves[0].siblings[1]: must be"),
    "siblings not list": (lambda o: o["leaves"][0].update(siblings=H), "leaves[0].siblings: must be a list"),
    "leaf extra key": (lambda o: o["leaves"][0].update(path=[]), "leaves[0]: unexpected key 'path'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_from_json_names_the_bad_field(case: str) -> None:
    change, message = BAD_FILES[case]

    with pytest.raises(ProofFormatError) as info:
        Proof.from_json(_edit(change))

    text = str(info.value)
    assert "\n" not in text
    assert message in text, text


def test_from_json_refuses_a_non_object() -> None:
    with pytest.raises(ProofFormatError, match="must be a JSON object, got list"):
        Proof.from_json([1, 2])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"format": "medgossip-proof/1", "format": "x"}', "repeated key 'format'"),
        (b'{"leafCount": NaN}', "NaN is not a JSON number"),
        (b'{"format": "medgossip-proof/0"}', "format: unknown proof format 'medgossip-proof/0'"),
        (b'{"format": "medgossip-proof/1"}', "missing key 'kind'"),
        (b'{"format": "medgossip-proof/0", "kind": "exclusion", "subject": "", "deltaHash": "",'
         b' "dataRoot": "", "leafCount": 0, "leaves": []}', "format: unknown proof format"),
    ],
)
def test_load_proof_names_the_path(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(content)

    with pytest.raises(ProofFormatError) as info:
        load_proof(path)

    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_proof_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProofFormatError, match="cannot read the proof file"):
        load_proof(tmp_path / "absent.json")


def test_a_well_formed_file_can_still_be_invalid(tmp_path: Path) -> None:
    obj = _good()
    obj["leaves"][0]["commitment"] = "0x" + "00" * 32  # one edited leaf
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(obj), encoding="utf-8")

    proof = load_proof(path)

    with pytest.raises(ProofInvalid):
        check(proof)
