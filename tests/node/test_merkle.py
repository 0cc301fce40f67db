"""The format-1 data commitment of node.merkle (DESIGN.md, "Data commitments and proofs")."""

from __future__ import annotations

import random

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from node.merkle import (
    EMPTY_TREE_ROOT,
    InvalidLeaf,
    MerkleError,
    MerkleTree,
    data_root,
    inclusion_siblings,
    root_from_siblings,
    sibling_count,
    sorted_leaves,
    tree_root,
)

A, B, C = bytes([0x11]) * 32, bytes([0x22]) * 32, bytes([0x33]) * 32


def leaf(i: int) -> bytes:
    return keccak(i.to_bytes(32, "big"))  # like a subject commitment keccak256(token)


def h_leaf(x: bytes) -> bytes:
    return keccak(b"\x00" + x)


def h_node(left: bytes, right: bytes) -> bytes:
    return keccak(b"\x01" + left + right)


def h_data(n: int, root: bytes) -> bytes:
    return keccak(b"\x02" + n.to_bytes(32, "big") + root)


def test_known_answer_three_leaves() -> None:
    # by hand: (A, B) paired, C promoted; then the count-binding data root
    by_hand = h_node(h_node(h_leaf(A), h_leaf(B)), h_leaf(C))

    assert tree_root([A, B, C]) == by_hand
    assert data_root([C, A, B]) == h_data(3, by_hand)
    # pinned (checked once against pycryptodome's keccak): a vector for outside verifiers
    assert by_hand.hex() == "496c05622cbf04ed3ebb29ddd3ee572a3e338db13723f6a30e0a9a96990521d6"
    assert data_root([A, B, C]).hex() == (
        "a26f7da5995d70f2afcc535b384e2adec746dfb73f463c3cf1f4c18c2d0e05a4"
    )


def test_empty_set() -> None:
    assert tree_root([]) == EMPTY_TREE_ROOT == bytes(32)
    assert data_root([]) == h_data(0, bytes(32))
    assert data_root([]).hex() == "b725f85eef4a0529eb196a4e20a12653bbd905f6228c68c6f9bc9ec72350d1ab"


def test_one_leaf_and_two() -> None:
    assert tree_root([A]) == h_leaf(A)
    assert data_root([A]) == h_data(1, h_leaf(A))
    assert tree_root([A, B]) == h_node(h_leaf(A), h_leaf(B))


def test_five_leaves_promote_twice() -> None:
    leaves = sorted(leaf(i) for i in range(5))
    l0, l1, l2, l3, l4 = (h_leaf(x) for x in leaves)

    # level 1: (01, 23, 4 promoted); level 2: (0123, 4 promoted); root
    assert tree_root(leaves) == h_node(h_node(h_node(l0, l1), h_node(l2, l3)), l4)


def test_inner_nodes_are_positional_not_sorted_pairs() -> None:
    assert h_node(h_leaf(A), h_leaf(B)) != h_node(h_leaf(B), h_leaf(A))
    assert tree_root([A, B]) == h_node(h_leaf(A), h_leaf(B))


def test_leaves_sort_as_uint256_big_endian() -> None:
    high_first_byte = bytes([1]) + bytes(31)  # 2**248
    low_first_byte = bytes([0]) + bytes([0xFF]) * 31  # 2**248 - 1
    assert sorted_leaves([high_first_byte, low_first_byte]) == [low_first_byte, high_first_byte]


def test_set_semantics_order_and_repeats_ignored() -> None:
    leaves = [leaf(i) for i in range(11)]
    shuffled = leaves[:]
    random.Random(4).shuffle(shuffled)

    assert data_root(leaves) == data_root(shuffled) == data_root(leaves + leaves[:3])
    assert data_root(iter(leaves)) == data_root(leaves)
    assert data_root(leaves) != data_root(leaves[:-1])
    assert data_root(leaves) != data_root(leaves[:-1] + [leaf(99)])


def test_tree_root_needs_a_sorted_distinct_list() -> None:
    with pytest.raises(InvalidLeaf, match="ascending"):
        tree_root([B, A])
    with pytest.raises(InvalidLeaf, match="distinct"):
        tree_root([A, A])


def test_leaves_must_be_32_bytes() -> None:
    with pytest.raises(InvalidLeaf):
        data_root([leaf(1), b"\x01" * 31])
    with pytest.raises(InvalidLeaf):
        tree_root([b"\x01" * 33])
    with pytest.raises(ValueError):  # the hierarchy is also ValueError
        data_root([b""])


@pytest.mark.parametrize("n", [*range(1, 18), 31, 32, 33, 64, 100])
def test_every_leaf_path_recomputes_the_root(n: int) -> None:
    ordered = sorted_leaves(leaf(i) for i in range(n))
    root = tree_root(ordered)
    depth = (n - 1).bit_length()  # ceil(log2 n)

    for index, commitment in enumerate(ordered):
        siblings = inclusion_siblings(ordered, index)
        assert len(siblings) == sibling_count(index, n) <= depth
        assert root_from_siblings(commitment, index, n, siblings) == root
        if n > 1:  # the same path at another position, or for another leaf, misses
            other = (index + 1) % n
            assert root_from_siblings(ordered[other], index, n, siblings) != root
            if sibling_count(other, n) == len(siblings):
                assert root_from_siblings(commitment, other, n, siblings) != root
            else:
                with pytest.raises(MerkleError):
                    root_from_siblings(commitment, other, n, siblings)


def test_promoted_levels_are_left_out() -> None:
    # 3 leaves: leaf 2 is promoted at level 0, so its path is one hash, H(l0, l1)
    ordered = [A, B, C]
    assert inclusion_siblings(ordered, 2) == [h_node(h_leaf(A), h_leaf(B))]
    assert inclusion_siblings(ordered, 0) == [h_leaf(B), h_leaf(C)]
    assert inclusion_siblings(ordered, 1) == [h_leaf(A), h_leaf(C)]


def test_root_from_siblings_refuses_a_wrong_shape() -> None:
    ordered = sorted_leaves(leaf(i) for i in range(6))
    siblings = inclusion_siblings(ordered, 2)

    with pytest.raises(MerkleError, match="out of range"):
        root_from_siblings(ordered[2], 6, 6, siblings)
    with pytest.raises(MerkleError, match="needs 3 siblings, got 2"):
        root_from_siblings(ordered[2], 2, 6, siblings[:-1])
    with pytest.raises(MerkleError, match="needs 3 siblings, got 4"):
        root_from_siblings(ordered[2], 2, 6, siblings + [A])
    with pytest.raises(MerkleError, match="32 bytes"):
        root_from_siblings(ordered[2], 2, 6, [siblings[0][:31], *siblings[1:]])
    with pytest.raises(MerkleError, match="out of range"):
        inclusion_siblings(ordered, 6)


def test_inner_node_cannot_pose_as_leaf() -> None:
    ordered = sorted_leaves(leaf(i) for i in range(4))
    l0, l1, l2, l3 = (h_leaf(x) for x in ordered)
    root = tree_root(ordered)

    # claim H(l0, l1) is leaf 0 of a 2-leaf tree whose sibling is H(l2, l3)
    assert root_from_siblings(h_node(l0, l1), 0, 2, [h_node(l2, l3)]) != root


@settings(max_examples=40, deadline=None)
@given(
    leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=40),
    seed=st.integers(0, 2**32),
)
def test_property_root_is_of_the_set_and_every_path_verifies(leaves: list[bytes], seed: int) -> None:
    shuffled = leaves[:]
    random.Random(seed).shuffle(shuffled)
    tree = MerkleTree.build(sorted_leaves(leaves))

    assert data_root(shuffled) == data_root(leaves) == tree.data_root
    assert tree.data_root == h_data(len(set(leaves)), tree.root)
    for index, commitment in enumerate(tree.leaves):
        assert root_from_siblings(commitment, index, len(tree.leaves), tree.siblings(index)) == tree.root
