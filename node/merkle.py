"""The data commitment, format 1: a Merkle tree over the subjects a contribution used.

Each contribution recorded on chain carries a ``dataRoot`` that commits to the set of
*subject commitments* (32 bytes each, ``keccak256(consent token)``, see
``node.data.consent``) whose images the node trained on that round. The node keeps the
set itself private; with :mod:`node.proofs` it can later show one subject's
*inclusion*, or its *exclusion* (two adjacent leaves around it), without revealing the
others. Commitments are hashes of 32 random bytes, so neither roots nor siblings can be
brute-forced back to identities.

The construction is the "Data commitments and proofs (format 1)" section of
``DESIGN.md``, byte for byte; outside verifiers implement it, so changing anything here
changes every recorded root and breaks them:

- leaves: the distinct commitments, sorted ascending as 256-bit big-endian unsigned
  integers (the same order as comparing the 32-byte strings); ``n`` leaves;
- leaf hash: ``keccak256(0x00 || commitment)``; inner node:
  ``keccak256(0x01 || left || right)``, *positional* (not sorted pairs), so the path's
  left/right turns, which follow from the index, bind each leaf to its position. That is
  what lets two adjacent leaves prove that nothing lies between them;
- each level pairs nodes (0, 1), (2, 3), ... left to right; an odd last node is promoted
  unchanged; the tree root of ``n = 0`` is 32 zero bytes;
- ``dataRoot = keccak256(0x02 || uint256_be(n) || treeRoot)``: binding ``n`` lets a
  verifier know the tree's shape, hence which levels of a path are promotions and which
  index is the last one.

The ``0x00`` / ``0x01`` / ``0x02`` prefixes keep leaves, inner nodes and the data root
apart, so none can pass for another (second-preimage attacks). This module is pure: no
I/O, only hashing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from node.errors import NodeError

__all__ = [
    "EMPTY_TREE_ROOT",
    "HASH_SIZE",
    "InvalidLeaf",
    "MerkleError",
    "MerkleTree",
    "data_root",
    "data_root_from_tree_root",
    "inclusion_siblings",
    "leaf_hash",
    "root_from_siblings",
    "sibling_count",
    "sorted_leaves",
    "tree_root",
]

HASH_SIZE = 32
EMPTY_TREE_ROOT = bytes(HASH_SIZE)
"""Tree root of the empty set (its data root still binds ``n = 0``)."""

MAX_LEAF_COUNT = 2**256 - 1
"""``n`` is written as a uint256."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_DATA_ROOT_PREFIX = b"\x02"


class MerkleError(NodeError, ValueError):
    """Base of the errors raised by this module."""


class InvalidLeaf(MerkleError):
    """A leaf is not 32 bytes, or leaves that must be sorted and distinct are not."""


def leaf_hash(commitment: bytes) -> bytes:
    """``keccak256(0x00 || commitment)``."""
    return keccak(_LEAF_PREFIX + commitment)


def _node_hash(left: bytes, right: bytes) -> bytes:
    return keccak(_NODE_PREFIX + left + right)


def _check_leaf(leaf: bytes) -> bytes:
    value = bytes(leaf)
    if len(value) != HASH_SIZE:
        raise InvalidLeaf(f"a Merkle leaf must be {HASH_SIZE} bytes, got {len(value)} bytes")
    return value


def sorted_leaves(leaves: Iterable[bytes]) -> list[bytes]:
    """The leaf list of a set of commitments: 32 bytes each, distinct, ascending.

    Repeats are dropped and order is ignored: the root depends only on *which* subjects
    were used. Raises :class:`InvalidLeaf` for a leaf that is not 32 bytes.
    """
    return sorted({_check_leaf(leaf) for leaf in leaves})


def _check_sorted(ordered: Sequence[bytes]) -> list[bytes]:
    values = [_check_leaf(leaf) for leaf in ordered]
    for i in range(1, len(values)):
        if values[i - 1] >= values[i]:
            raise InvalidLeaf(f"leaves must be distinct and ascending: leaf {i} is not above leaf {i - 1}")
    return values


def _parent_level(level: Sequence[bytes]) -> list[bytes]:
    parents = [_node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2 == 1:
        parents.append(level[-1])  # odd last node promoted unchanged
    return parents


@dataclass(frozen=True)
class MerkleTree:
    """Every level of the tree of a sorted leaf list, to answer many proofs from one build.

    ``levels[0]`` holds the leaf hashes, the last level the root (no level when empty).
    """

    leaves: tuple[bytes, ...]
    levels: tuple[tuple[bytes, ...], ...]

    @classmethod
    def build(cls, ordered: Sequence[bytes]) -> MerkleTree:
        """The tree of ``ordered`` (as returned by :func:`sorted_leaves`).

        Raises :class:`InvalidLeaf` unless the leaves are 32 bytes, distinct and ascending.
        """
        values = _check_sorted(ordered)
        if not values:
            return cls((), ())
        level = [leaf_hash(leaf) for leaf in values]
        levels = [tuple(level)]
        while len(level) > 1:
            level = _parent_level(level)
            levels.append(tuple(level))
        return cls(tuple(values), tuple(levels))

    @property
    def root(self) -> bytes:
        """The tree root (32 zero bytes for no leaf)."""
        return self.levels[-1][0] if self.levels else EMPTY_TREE_ROOT

    @property
    def data_root(self) -> bytes:
        """What a peer records as ``dataRoot``."""
        return data_root_from_tree_root(len(self.leaves), self.root)

    def siblings(self, index: int) -> list[bytes]:
        """The sibling hashes of leaf ``index``, bottom-up, promoted levels left out."""
        if not 0 <= index < len(self.leaves):
            raise MerkleError(f"leaf index {index} is out of range for {len(self.leaves)} leaves")
        path: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            # else: this node is the odd last one, promoted: no hash at this level
            index //= 2
        return path


def tree_root(ordered: Sequence[bytes]) -> bytes:
    """Tree root of a sorted leaf list; 32 zero bytes for no leaf.

    Raises :class:`InvalidLeaf` unless the leaves are 32 bytes, distinct and ascending.
    """
    return MerkleTree.build(ordered).root


def data_root_from_tree_root(leaf_count: int, root: bytes) -> bytes:
    """``keccak256(0x02 || uint256_be(leaf_count) || root)``."""
    if not 0 <= leaf_count <= MAX_LEAF_COUNT:
        raise MerkleError(f"a leaf count must be a uint256, got {leaf_count}")
    if len(root) != HASH_SIZE:
        raise MerkleError(f"a tree root must be {HASH_SIZE} bytes, got {len(root)} bytes")
    return keccak(_DATA_ROOT_PREFIX + leaf_count.to_bytes(HASH_SIZE, "big") + bytes(root))


def data_root(leaves: Iterable[bytes]) -> bytes:
    """The ``dataRoot`` of a set of commitments (order and repeats ignored).

    Raises :class:`InvalidLeaf` for a leaf that is not 32 bytes.
    """
    ordered = sorted_leaves(leaves)
    return data_root_from_tree_root(len(ordered), tree_root(ordered))


def inclusion_siblings(ordered: Sequence[bytes], index: int) -> list[bytes]:
    """The inclusion path of leaf ``index`` of a sorted leaf list, bottom-up.

    Levels where the path's node is the promoted odd last node are left out (a verifier
    knows them from ``n`` and ``index``). Raises :class:`MerkleError` for an index out of
    range, :class:`InvalidLeaf` for leaves that are not a sorted leaf list.
    """
    return MerkleTree.build(ordered).siblings(index)


def sibling_count(index: int, leaf_count: int) -> int:
    """How many siblings the path of leaf ``index`` among ``leaf_count`` leaves has."""
    if not 0 <= index < leaf_count:
        raise MerkleError(f"leaf index {index} is out of range for {leaf_count} leaves")
    count, width = 0, leaf_count
    while width > 1:
        if (index ^ 1) < width:
            count += 1
        index //= 2
        width = (width + 1) // 2
    return count


def root_from_siblings(commitment: bytes, index: int, leaf_count: int, siblings: Sequence[bytes]) -> bytes:
    """The tree root that ``siblings`` link leaf ``commitment`` at ``index`` to.

    Raises :class:`MerkleError` when ``index >= leaf_count``, when the number of
    siblings is not the one the tree's shape implies for ``(index, leaf_count)``, or
    when a hash is not 32 bytes.
    """
    expected = sibling_count(index, leaf_count)
    if len(siblings) != expected:
        raise MerkleError(
            f"leaf {index} of {leaf_count} needs {expected} siblings, got {len(siblings)}"
        )
    node = leaf_hash(_check_leaf(commitment))
    remaining = iter(siblings)
    width = leaf_count
    while width > 1:
        if (index ^ 1) < width:
            sibling = bytes(next(remaining))
            if len(sibling) != HASH_SIZE:
                raise MerkleError(f"a sibling must be {HASH_SIZE} bytes, got {len(sibling)} bytes")
            node = _node_hash(sibling, node) if index % 2 else _node_hash(node, sibling)
        index //= 2
        width = (width + 1) // 2
    return node
