"""Frozen records the binding returns, and the parsing of user-given values.

Hashes are 32-byte `bytes`, addresses EIP-55 checksummed `str`, transaction hashes
0x-prefixed hex `str`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NewType, Union

from contracts._args import EPSILON_SCALE, epsilon_to_micros
from contracts.errors import InvalidInput

__all__ = [
    "ConsentWithdrawn",
    "ContributionRecorded",
    "ContributionRef",
    "DeltaHash",
    "GenesisModelSet",
    "LedgerEvent",
    "NodeInfo",
    "NodeRegistered",
    "NodeRevocation",
    "PrivacyBudgetSet",
    "SampleCapSet",
    "SubjectCommitment",
    "TxResult",
    "parse_bytes32",
]

DeltaHash = NewType("DeltaHash", bytes)
"""keccak256 of a delta's canonical payload bytes."""
SubjectCommitment = NewType("SubjectCommitment", bytes)
"""keccak256 of a data subject's consent token."""

_HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class NodeInfo:
    """A node as the contract knows it; `active` is False once revoked.

    `sample_cap` bounds the sample count of each of its contributions; `last_round` is
    the last round it recorded (0: none); `revoked_at_block` is the block of its
    revocation (None: not revoked). Every record of a node precedes its revocation.

    `epsilon_budget` bounds `epsilon_spent`, the sum of the epsilons of all its
    records; both are also given exactly, in the contract's micro-epsilon. Spent is
    above the budget only when the admin lowered the budget since.
    """

    address: str
    peer_id: bytes
    active: bool
    sample_cap: int
    last_round: int
    revoked_at_block: int | None
    epsilon_budget: float
    epsilon_spent: float
    epsilon_budget_micros: int
    epsilon_spent_micros: int

    @property
    def epsilon_remaining(self) -> float:
        """Epsilon the node may still record (0.0 once spent or over budget)."""
        return max(0, self.epsilon_budget_micros - self.epsilon_spent_micros) / EPSILON_SCALE

    def allows_epsilon(self, epsilon: float) -> bool:
        """Whether the contract would take a record spending `epsilon` now, by the
        same rule and the same rounding (epsilon 0 is always within budget)."""
        micros = epsilon_to_micros(epsilon)
        return micros == 0 or self.epsilon_spent_micros + micros <= self.epsilon_budget_micros


@dataclass(frozen=True)
class ContributionRef:
    """The one-call view of a recorded delta hash."""

    author: str
    round: int
    sample_count: int


@dataclass(frozen=True)
class ContributionRecorded:
    """A `ContributionRecorded` event."""

    delta_hash: bytes
    node: str
    round: int
    base_model_hash: bytes
    sample_count: int
    data_root: bytes
    epsilon_spent: float
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class ConsentWithdrawn:
    """A `ConsentWithdrawn` event; `by` is the sender (custodian node or relayer)."""

    subject: bytes
    by: str
    by_token: bool
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class NodeRegistered:
    """A `NodeRegistered` event."""

    node: str
    peer_id: bytes
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class SampleCapSet:
    """A `SampleCapSet` event: at registration, or a change by the admin."""

    node: str
    sample_cap: int
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class PrivacyBudgetSet:
    """A `PrivacyBudgetSet` event: at registration, or a change by the admin."""

    node: str
    epsilon_budget: float
    epsilon_budget_micros: int
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class NodeRevocation:
    """A `NodeRevoked` event."""

    node: str
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class GenesisModelSet:
    """A `GenesisModelSet` event."""

    model_hash: bytes
    block_number: int
    tx_hash: str


LedgerEvent = Union[
    ContributionRecorded, ConsentWithdrawn, NodeRegistered, SampleCapSet, PrivacyBudgetSet,
    NodeRevocation, GenesisModelSet,
]


@dataclass(frozen=True)
class BlockRef:
    """A block as an indexer needs it: its number, hash (a reset chain has another
    hash at the same number) and timestamp (seconds)."""

    number: int
    hash: str
    timestamp: int


@dataclass(frozen=True)
class NewContribution:
    """One contribution to record (`AuditLedger.record_contributions`): the arguments of
    recordContribution but the withdrawal block, which a batch shares."""

    delta_hash: bytes
    base_model_hash: bytes
    round: int
    sample_count: int
    data_root: bytes
    epsilon_spent: float


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction: `event` is the first event it emitted (if
    any), `events` all of them in order (registration emits three)."""

    tx_hash: str
    block_number: int
    gas_used: int
    event: LedgerEvent | None = None
    contract_address: str | None = None
    events: tuple[LedgerEvent, ...] = ()


def parse_bytes32(text: str, what: str = "hash") -> bytes:
    """Parse 64 hex characters (optionally 0x-prefixed) into 32 bytes.

    Raises InvalidInput naming `what` and saying what is wrong.
    """
    stripped = text.strip()
    if not _HEX32.match(stripped):
        digits = len(stripped.removeprefix("0x"))
        raise InvalidInput(
            f"{what} must be 64 hex characters (32 bytes, optionally 0x-prefixed), "
            f"got {digits} characters: {stripped[:20]!r}"
            + ("..." if len(stripped) > 20 else "")
        )
    return bytes.fromhex(stripped.removeprefix("0x"))
