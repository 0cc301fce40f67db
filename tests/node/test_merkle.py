"""The data-commitment Merkle tree of node.merkle."""

from __future__ import annotations

import random

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from node.merkle import (
    EMPTY_ROOT,
    InvalidLeaf,
    NotAMember,
    merkle_proof,
    merkle_root,
    verify_proof,
)


def leaf(i: int) -> bytes:
    return keccak(i.to_bytes(32, "big"))  # like a subject commitment keccak256(token)


def h_leaf(x: bytes) -> bytes:
    return keccak(b"\x00" + x)


def h_node(a: bytes, b: bytes) -> bytes:
    return keccak(b"\x01" + min(a, b) + max(a, b))


def test_empty_set_root_is_zero() -> None:
    assert merkle_root([]) == EMPTY_ROOT == bytes(32)


def test_hand_built_roots() -> None:
    a, b, c = sorted([leaf(1), leaf(2), leaf(3)])

    assert merkle_root([a]) == h_leaf(a)
    assert merkle_root([a, b]) == h_node(h_leaf(a), h_leaf(b))
    # three leaves: (a, b) paired, c promoted
    assert merkle_root([c, a, b]) == h_node(h_node(h_leaf(a), h_leaf(b)), h_leaf(c))


def test_root_ignores_order_and_duplicates() -> None:
    leaves = [leaf(i) for i in range(11)]
    shuffled = leaves[:]
    random.Random(4).shuffle(shuffled)

    assert merkle_root(leaves) == merkle_root(shuffled) == merkle_root(leaves + leaves[:3])
    assert merkle_root(iter(leaves)) == merkle_root(leaves)


def test_root_changes_with_membership() -> None:
    leaves = [leaf(i) for i in range(8)]
    assert merkle_root(leaves) != merkle_root(leaves[:-1])
    assert merkle_root(leaves) != merkle_root(leaves[:-1] + [leaf(99)])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 13])
def test_every_member_has_a_verifying_proof(n: int) -> None:
    leaves = [leaf(i) for i in range(n)]
    root = merkle_root(leaves)

    for member in leaves:
        proof = merkle_proof(reversed(leaves), member)
        assert verify_proof(root, member, proof)
        assert len(proof) <= max(0, (n - 1).bit_length())


def test_non_member_and_tampered_proofs_fail() -> None:
    leaves = [leaf(i) for i in range(6)]
    root = merkle_root(leaves)
    member = leaves[2]
    proof = merkle_proof(leaves, member)
    outsider = leaf(100)

    assert not verify_proof(root, outsider, proof)
    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1])] + proof[1:]
    assert not verify_proof(root, member, tampered)
    assert not verify_proof(root, member, proof[:-1])
    assert not verify_proof(root, member, proof + [leaf(7)])
    assert not verify_proof(merkle_root(leaves[:5]), member, proof)
    assert not verify_proof(root, member, [b"short"] + proof[1:])
    assert not verify_proof(root[:31], member, proof)


def test_inner_node_cannot_pose_as_leaf() -> None:
    leaves = [leaf(i) for i in range(4)]
    root = merkle_root(leaves)
    l0, l1, l2, l3 = (h_leaf(x) for x in sorted(leaves))
    inner = h_node(l0, l1)

    assert not verify_proof(root, inner, [h_node(l2, l3)])


def test_proof_for_non_member_is_an_error() -> None:
    with pytest.raises(NotAMember):
        merkle_proof([leaf(1), leaf(2)], leaf(3))
    with pytest.raises(NotAMember):
        merkle_proof([], leaf(3))


def test_leaves_must_be_32_bytes() -> None:
    with pytest.raises(InvalidLeaf):
        merkle_root([leaf(1), b"\x01" * 31])
    with pytest.raises(InvalidLeaf):
        merkle_proof([leaf(1)], b"\x01" * 33)
    with pytest.raises(ValueError):  # the hierarchy is also ValueError
        merkle_root([b""])


@settings(max_examples=30, deadline=None)
@given(
    leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=20),
    seed=st.integers(0, 2**32),
)
def test_property_order_independent_and_all_proofs_verify(
    leaves: list[bytes], seed: int
) -> None:
    shuffled = leaves[:]
    random.Random(seed).shuffle(shuffled)
    root = merkle_root(leaves)

    assert merkle_root(shuffled) == root
    for member in leaves:
        assert verify_proof(root, member, merkle_proof(shuffled, member))
