"""The data commitment: a Merkle root over the subjects a contribution was trained on.

Each contribution recorded on chain carries a ``data_root``: the Merkle root of the
*subject commitments* (32 bytes each, ``keccak256(consent token)``, see
``node.data.consent``) whose images the node used for that round. The node keeps the
list itself private. Later an auditor can ask "was subject S's data used in
contribution X?":

- the node hands over the list: the auditor recomputes :func:`merkle_root` and compares
  it with the ``data_root`` on chain; or
- the node hands over only a :func:`merkle_proof` for S (``ceil(log2 n)`` sibling
  hashes): :func:`verify_proof` against the on-chain root shows S is a member without
  revealing the other subjects. Commitments are hashes of 32 random bytes, so neither
  the root nor the siblings can be brute-forced back to identities.

Construction (fixed; changing it changes every recorded root):

- leaves: the set of commitments -- duplicates removed, sorted ascending as bytes;
- leaf hash: ``keccak256(0x00 || leaf)``;
- inner node: ``keccak256(0x01 || min(a, b) || max(a, b))``, comparing the 32-byte
  hashes as unsigned big-endian numbers (same as Solidity's ``bytes32`` ``<``). Sorted
  pairs make the hash commutative, so a proof is just the sibling hashes, no
  left/right bits;
- a level with an odd number of nodes promotes its last node unchanged;
- the empty set has the root ``bytes(32)`` (32 zero bytes).

The ``0x00`` / ``0x01`` prefixes separate leaves from inner nodes, so an inner node can
never be passed off as a leaf (second-preimage attack). Because the leaf set is sorted
and deduplicated, the root depends only on *which* subjects were used, not on the
order the trainer saw them. A Solidity verifier is a loop of
``keccak256(abi.encodePacked(bytes1(0x01), lo, hi))``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from eth_hash.auto import keccak

from node.errors import NodeError

__all__ = [
    "EMPTY_ROOT",
    "InvalidLeaf",
    "MerkleError",
    "NotAMember",
    "merkle_proof",
    "merkle_root",
    "verify_proof",
]

HASH_SIZE = 32
EMPTY_ROOT = bytes(HASH_SIZE)
"""Root of the empty set."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class MerkleError(NodeError, ValueError):
    """Base of the errors raised by this module."""


class InvalidLeaf(MerkleError):
    """A leaf is not 32 bytes."""


class NotAMember(MerkleError):
    """A proof was asked for a leaf that is not in the set."""


def _leaf_hash(leaf: bytes) -> bytes:
    return keccak(_LEAF_PREFIX + leaf)


def _node_hash(a: bytes, b: bytes) -> bytes:
    lo, hi = (a, b) if a <= b else (b, a)
    return keccak(_NODE_PREFIX + lo + hi)


def _normalise(leaves: Iterable[bytes]) -> list[bytes]:
    """The leaf set: validated, deduplicated and sorted."""
    unique: set[bytes] = set()
    for leaf in leaves:
        value = bytes(leaf)
        if len(value) != HASH_SIZE:
            raise InvalidLeaf(
                f"a Merkle leaf must be {HASH_SIZE} bytes, got {len(value)} bytes"
            )
        unique.add(value)
    return sorted(unique)


def _parent_level(level: Sequence[bytes]) -> list[bytes]:
    parents = [_node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2 == 1:
        parents.append(level[-1])  # odd node promoted unchanged
    return parents


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """Merkle root of a set of 32-byte subject commitments (order and repeats ignored).

    Raises :class:`InvalidLeaf` for a leaf that is not 32 bytes.
    """
    level = [_leaf_hash(leaf) for leaf in _normalise(leaves)]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


def merkle_proof(leaves: Iterable[bytes], leaf: bytes) -> list[bytes]:
    """The sibling hashes proving ``leaf`` is in the set, bottom-up.

    Empty for a one-element set (the root is then the leaf hash). Raises
    :class:`NotAMember` when ``leaf`` is not in ``leaves``, :class:`InvalidLeaf` for a
    leaf that is not 32 bytes.
    """
    ordered = _normalise(leaves)
    target = bytes(leaf)
    if len(target) != HASH_SIZE:
        raise InvalidLeaf(f"a Merkle leaf must be {HASH_SIZE} bytes, got {len(target)}")
    try:
        index = ordered.index(target)
    except ValueError as exc:
        raise NotAMember("the leaf is not in the committed set") from exc
    level = [_leaf_hash(value) for value in ordered]
    proof: list[bytes] = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        # else: the odd last node is promoted, no hash at this level
        level = _parent_level(level)
        index //= 2
    return proof


def verify_proof(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` links ``leaf`` to ``root``.

    Never raises on malformed input: a root, leaf or proof element that is not 32
    bytes simply does not verify.
    """
    root, leaf = bytes(root), bytes(leaf)
    if len(root) != HASH_SIZE or len(leaf) != HASH_SIZE:
        return False
    node = _leaf_hash(leaf)
    for sibling in proof:
        sibling = bytes(sibling)
        if len(sibling) != HASH_SIZE:
            return False
        node = _node_hash(node, sibling)
    return node == root
