"""Inclusion and exclusion proofs of one subject against one contribution's ``dataRoot``.

A custodian hospital answers "were subject S's images used in contribution X?" with a
proof file (format 1 of ``DESIGN.md``, "Data commitments and proofs"), built from the
round's sorted leaf list by :func:`prove`:

- *inclusion*: the leaf equal to S and its path to the tree root;
- *exclusion*: no leaf when the set is empty; the first leaf when S is below all leaves;
  the last leaf when S is above all; otherwise the two adjacent leaves ``i``, ``i + 1``
  with ``leaf[i] < S < leaf[i + 1]``. Positional hashing binds each leaf to its index,
  and ``dataRoot`` binds the leaf count, so adjacent indices leave no room for S.

:func:`check` is the verifier's local part: every condition that needs no chain. The
other part (the ``ContributionRecorded`` event with the proof's ``deltaHash`` carries the
same ``dataRoot``) is the caller's; ``deltaHash`` enters no hash here, so only that chain
lookup can catch a proof moved to another contribution.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossip.files import atomic_write
from node.errors import NodeError
from node.merkle import (
    HASH_SIZE,
    MAX_LEAF_COUNT,
    MerkleError,
    MerkleTree,
    data_root_from_tree_root,
    root_from_siblings,
    sorted_leaves,
)

__all__ = [
    "EXCLUSION",
    "INCLUSION",
    "PROOF_FORMAT",
    "Proof",
    "ProofError",
    "ProofFormatError",
    "ProofInvalid",
    "ProofLeaf",
    "check",
    "dumps",
    "load_proof",
    "prove",
    "prove_in",
    "write_proof",
]

PROOF_FORMAT = "medgossip-proof/1"
INCLUSION = "inclusion"
EXCLUSION = "exclusion"
MAX_PROOF_FILE_BYTES = 1 << 20
"""A format-1 proof is at most two paths of 256 siblings (~36 KB); refuse far more unread."""

_KEYS = ("format", "kind", "subject", "deltaHash", "dataRoot", "leafCount", "leaves")
_LEAF_KEYS = ("index", "commitment", "siblings")
_MAX_LEAVES = {INCLUSION: (1, 1), EXCLUSION: (0, 2)}
_HEX32 = re.compile(r"0x[0-9a-f]{64}")


class ProofError(NodeError):
    """Base of the errors about proofs."""


class ProofFormatError(ProofError):
    """Not a valid format-1 proof file: the message names the file or field and what is wrong."""


class ProofInvalid(ProofError):
    """A well-formed proof that does not hold: the message says which condition failed."""


@dataclass(frozen=True)
class ProofLeaf:
    """One leaf of the committed list and its inclusion path (bottom-up siblings)."""

    index: int
    commitment: bytes
    siblings: tuple[bytes, ...]


@dataclass(frozen=True)
class Proof:
    """A format-1 proof that ``subject`` is (``inclusion``) or is not (``exclusion``) a leaf."""

    kind: str
    subject: bytes
    delta_hash: bytes
    data_root: bytes
    leaf_count: int
    leaves: tuple[ProofLeaf, ...]

    def to_json(self) -> dict[str, Any]:
        """The DESIGN.md JSON object (hex 0x-prefixed lowercase), keys in its order."""
        return {
            "format": PROOF_FORMAT,
            "kind": self.kind,
            "subject": _hex(self.subject),
            "deltaHash": _hex(self.delta_hash),
            "dataRoot": _hex(self.data_root),
            "leafCount": self.leaf_count,
            "leaves": [
                {
                    "index": leaf.index,
                    "commitment": _hex(leaf.commitment),
                    "siblings": [_hex(s) for s in leaf.siblings],
                }
                for leaf in self.leaves
            ],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Proof:
        """Parse a decoded proof file; :class:`ProofFormatError` names the field at fault.

        Only the structure is checked here (version, keys, types, hex, leaf count for
        the kind); whether the proof holds is :func:`check`'s question.
        """
        if isinstance(obj, dict) and "format" in obj and obj["format"] != PROOF_FORMAT:
            # the version first: another version's keys are not ours to judge
            raise ProofFormatError(
                f"format: unknown proof format {_show(obj['format'])}, expected {PROOF_FORMAT!r}"
            )
        _require_keys(obj, _KEYS, "the proof")
        kind = obj["kind"]
        if not isinstance(kind, str) or kind not in _MAX_LEAVES:
            raise ProofFormatError(f"kind: must be {INCLUSION!r} or {EXCLUSION!r}, got {_show(kind)}")
        leaf_count = _integer(obj["leafCount"], "leafCount")
        if leaf_count > MAX_LEAF_COUNT:
            raise ProofFormatError("leafCount: does not fit in a uint256")
        items = obj["leaves"]
        if not isinstance(items, list):
            raise ProofFormatError(f"leaves: must be a list, got {type(items).__name__}")
        low, high = _MAX_LEAVES[kind]
        if not low <= len(items) <= high:
            allowed = f"exactly {low} leaf" if low == high else f"{low} to {high} leaves"
            raise ProofFormatError(f"leaves: an {kind} proof has {allowed}, got {len(items)}")
        return cls(
            kind=kind,
            subject=_bytes32(obj["subject"], "subject"),
            delta_hash=_bytes32(obj["deltaHash"], "deltaHash"),
            data_root=_bytes32(obj["dataRoot"], "dataRoot"),
            leaf_count=leaf_count,
            leaves=tuple(_leaf_from_json(item, f"leaves[{i}]") for i, item in enumerate(items)),
        )


def prove(leaves: Iterable[bytes], subject: bytes, delta_hash: bytes) -> Proof:
    """The proof for ``subject`` against the set ``leaves``: inclusion if it is a leaf, else exclusion.

    ``leaves`` is the round's set of commitments (order and repeats ignored);
    ``delta_hash`` names the contribution whose ``dataRoot`` the proof is checked
    against. Raises :class:`ProofError` for a subject or delta hash that is not 32 bytes,
    ``node.merkle.InvalidLeaf`` for a leaf that is not.
    """
    return prove_in(MerkleTree.build(sorted_leaves(leaves)), subject, delta_hash)


def prove_in(tree: MerkleTree, subject: bytes, delta_hash: bytes) -> Proof:
    """:func:`prove` against a tree already built: many subjects, one hashing of the set."""
    subject, delta_hash = bytes(subject), bytes(delta_hash)
    for name, value in (("subject", subject), ("delta hash", delta_hash)):
        if len(value) != HASH_SIZE:
            raise ProofError(f"a {name} must be {HASH_SIZE} bytes, got {len(value)} bytes")
    n = len(tree.leaves)
    position = bisect_left(tree.leaves, subject)
    if position < n and tree.leaves[position] == subject:
        kind, indices = INCLUSION, [position]
    else:
        # position = how many leaves lie below the subject
        kind, indices = EXCLUSION, [i for i in (position - 1, position) if 0 <= i < n]
    return Proof(
        kind=kind,
        subject=subject,
        delta_hash=delta_hash,
        data_root=tree.data_root,
        leaf_count=n,
        leaves=tuple(ProofLeaf(i, tree.leaves[i], tuple(tree.siblings(i))) for i in indices),
    )


def check(proof: Proof) -> None:
    """Verify everything a proof states that needs no chain; :class:`ProofInvalid` says what fails.

    Checked: the kind and its number of leaves; every hash is 32 bytes; the leaves'
    indices are in range (adjacent, for two); the commitments sit where the kind says
    relative to the subject; every path recomputes one and the same tree root; and
    ``dataRoot`` recomputed from ``leafCount`` and that root equals the proof's.
    """
    n, leaves, subject = proof.leaf_count, proof.leaves, proof.subject
    if proof.kind not in _MAX_LEAVES:
        raise ProofInvalid(f"kind must be {INCLUSION!r} or {EXCLUSION!r}, got {proof.kind!r}")
    for name, value in (("subject", subject), ("deltaHash", proof.delta_hash), ("dataRoot", proof.data_root)):
        if len(value) != HASH_SIZE:
            raise ProofInvalid(f"{name} must be {HASH_SIZE} bytes, got {len(value)} bytes")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_LEAF_COUNT:
        raise ProofInvalid(f"leafCount must be a uint256, got {n!r}")
    if proof.kind == INCLUSION:
        _check_inclusion(leaves, subject, n)
    else:
        _check_exclusion(leaves, subject, n)
    roots: set[bytes] = set()
    for i, leaf in enumerate(leaves):
        try:
            roots.add(root_from_siblings(leaf.commitment, leaf.index, n, leaf.siblings))
        except MerkleError as exc:
            raise ProofInvalid(f"leaves[{i}]: {exc}") from exc
    if len(roots) > 1:
        raise ProofInvalid("the two leaves' paths lead to different tree roots")
    tree_root = roots.pop() if roots else bytes(HASH_SIZE)
    if data_root_from_tree_root(n, tree_root) != proof.data_root:
        raise ProofInvalid("dataRoot does not match the root the leaves and leafCount recompute")


def _check_inclusion(leaves: tuple[ProofLeaf, ...], subject: bytes, n: int) -> None:
    if len(leaves) != 1:
        raise ProofInvalid(f"an inclusion proof has exactly 1 leaf, got {len(leaves)}")
    leaf = leaves[0]
    if not 0 <= leaf.index < n:
        raise ProofInvalid(f"leaves[0]: index {leaf.index} is out of range for leafCount {n}")
    if leaf.commitment != subject:
        raise ProofInvalid("leaves[0]: the commitment is not the subject")


def _check_exclusion(leaves: tuple[ProofLeaf, ...], subject: bytes, n: int) -> None:
    if n == 0:
        if leaves:
            raise ProofInvalid(f"an exclusion proof over 0 leaves has no leaf, got {len(leaves)}")
        return
    for i, leaf in enumerate(leaves):
        if not 0 <= leaf.index < n:
            raise ProofInvalid(f"leaves[{i}]: index {leaf.index} is out of range for leafCount {n}")
    if len(leaves) == 1:
        (leaf,) = leaves
        below_all = leaf.index == 0 and subject < leaf.commitment
        above_all = leaf.index == n - 1 and subject > leaf.commitment
        if not (below_all or above_all):
            raise ProofInvalid(
                "leaves[0]: one leaf excludes the subject only as leaf 0 above it "
                f"or leaf {n - 1} below it (index {leaf.index})"
            )
    elif len(leaves) == 2:
        left, right = leaves
        if right.index != left.index + 1:
            raise ProofInvalid(
                f"leaves: indices {left.index} and {right.index} are not adjacent and ascending"
            )
        if not left.commitment < subject < right.commitment:
            raise ProofInvalid("leaves: the subject does not lie strictly between the two commitments")
    else:
        raise ProofInvalid(f"an exclusion proof over {n} leaves has 1 or 2 leaves, got {len(leaves)}")


def dumps(proof: Proof) -> str:
    """The proof file's text: compact UTF-8 JSON, one line."""
    return json.dumps(proof.to_json(), separators=(",", ":")) + "\n"


def write_proof(path: Path, proof: Proof) -> None:
    """Write ``proof`` to ``path`` atomically (readable by others: it names no patient)."""
    atomic_write(path, dumps(proof), mode=0o666)


def load_proof(path: Path) -> Proof:
    """Read a proof file; :class:`ProofFormatError` (naming the path) if it is not format 1."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PROOF_FILE_BYTES + 1)
    except OSError as exc:
        raise ProofFormatError(f"{path}: cannot read the proof file ({exc.strerror or exc})") from exc
    if len(raw) > MAX_PROOF_FILE_BYTES:
        raise ProofFormatError(f"{path}: over {MAX_PROOF_FILE_BYTES} bytes, not a proof file")
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_repeated_keys,
                         parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ProofFormatError(f"{path}: not UTF-8 text") from exc
    except ValueError as exc:  # JSONDecodeError, and the hooks' refusals
        raise ProofFormatError(f"{path}: not valid JSON ({exc})") from exc
    try:
        return Proof.from_json(obj)
    except ProofFormatError as exc:
        raise ProofFormatError(f"{path}: {exc}") from exc


# --- helpers ------------------------------------------------------------------------


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _show(value: Any) -> str:
    """A short rendering of a bad value for a one-line message."""
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _require_keys(obj: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(obj, dict):
        raise ProofFormatError(f"{where} must be a JSON object, got {type(obj).__name__}")
    missing = [key for key in keys if key not in obj]
    if missing:
        raise ProofFormatError(f"{where}: missing key {missing[0]!r}")
    extra = sorted(str(key) for key in obj if key not in keys)
    if extra:
        raise ProofFormatError(f"{where}: unexpected key {_show(extra[0])}")


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofFormatError(f"{field}: must be an integer, got {_show(value)}")
    if value < 0:
        raise ProofFormatError(f"{field}: must not be negative, got {value}")
    return value


def _bytes32(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or _HEX32.fullmatch(value) is None:
        raise ProofFormatError(
            f"{field}: must be 0x and {2 * HASH_SIZE} lowercase hex digits, got {_show(value)}"
        )
    return bytes.fromhex(value[2:])


def _leaf_from_json(item: Any, where: str) -> ProofLeaf:
    _require_keys(item, _LEAF_KEYS, where)
    siblings = item["siblings"]
    if not isinstance(siblings, list):
        raise ProofFormatError(f"{where}.siblings: must be a list, got {type(siblings).__name__}")
    if len(siblings) > 8 * HASH_SIZE:
        raise ProofFormatError(f"{where}.siblings: {len(siblings)} siblings, a uint256 tree has at most 256")
    return ProofLeaf(
        index=_integer(item["index"], f"{where}.index"),
        commitment=_bytes32(item["commitment"], f"{where}.commitment"),
        siblings=tuple(_bytes32(s, f"{where}.siblings[{j}]") for j, s in enumerate(siblings)),
    )


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Two verifiers must never read one file two ways: a repeated key is refused."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"repeated key {key!r}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
