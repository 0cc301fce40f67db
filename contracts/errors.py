"""Errors of the chain side. Every web3 / eth-tester / RPC failure is translated into
one of these, once, in `contracts.ledger` (`raise ... from exc`).

`LedgerError` derives from the project's root `MedgossipError` (in `gossip.errors`, the
lowest package); the whole project tree is drawn in `node/errors.py`.

    MedgossipError
    └── LedgerError
        ├── ChainUnavailable          RPC unreachable, refused, timed out, chain stopped
        ├── LogRangeRefused           the RPC refuses an eth_getLogs range as too large
        │                             (the binding narrows the range; raised only when
        │                             even one block is refused)
        ├── NetworkFileError          a network.json is missing, unreadable or malformed
        ├── ContractNotFound          no AuditLedger code at the configured address
        ├── InvalidInput              a malformed argument (hash length, address checksum,
        │                             key, out-of-range number), caught before sending
        ├── TransactionFailed         the chain rejected or reverted a transaction without
        │   │                         a project-specific reason (out of gas, bad nonce, ...)
        │   └── InsufficientFunds     the sending account cannot pay for gas
        └── ContractRejected          the contract reverted with one of its custom errors
            ├── NotAdmin              AuditLedgerNotAdmin(caller)
            ├── NotRegistered         AuditLedgerNotRegistered(node)
            ├── NodeRevoked           AuditLedgerNodeRevoked(node)
            ├── AlreadyRegistered     AuditLedgerAlreadyRegistered(node)
            ├── DuplicateContribution AuditLedgerDuplicateContribution(deltaHash)
            ├── AlreadyWithdrawn      AuditLedgerAlreadyWithdrawn(subjectCommitment)
            ├── GenesisAlreadySet     AuditLedgerGenesisAlreadySet(modelHash)
            ├── StaleRound            AuditLedgerStaleRound(node, round, lastRound)
            ├── SampleCountOverCap    AuditLedgerSampleCountOverCap(node, sampleCount,
            │                         sampleCap)
            ├── PrivacyBudgetExceeded AuditLedgerPrivacyBudgetExceeded(node, spentMicros,
            │                         epsilonMicros, budgetMicros)
            └── RejectedArgument      AuditLedgerZeroHash / ZeroAddress / EmptyPeerId /
                                      ZeroSampleCap
"""

from __future__ import annotations

from contracts.units import EPSILON_SCALE
from gossip.errors import MedgossipError

__all__ = [
    "AlreadyRegistered",
    "AlreadyWithdrawn",
    "ChainUnavailable",
    "ContractNotFound",
    "ContractRejected",
    "DuplicateContribution",
    "GenesisAlreadySet",
    "InsufficientFunds",
    "InvalidInput",
    "LedgerError",
    "LogRangeRefused",
    "NetworkFileError",
    "NodeRevoked",
    "NotAdmin",
    "NotRegistered",
    "PrivacyBudgetExceeded",
    "RejectedArgument",
    "SampleCountOverCap",
    "StaleRound",
    "TransactionFailed",
]


class LedgerError(MedgossipError):
    """Base of every chain-side error."""


class ChainUnavailable(LedgerError):
    """The JSON-RPC endpoint cannot be reached (refused, timed out, stopped)."""


class LogRangeRefused(LedgerError):
    """The RPC server refused an eth_getLogs block range as too large (many public and
    consortium RPCs cap it); `events.iter_logs` catches it and asks for narrower ranges."""


class NetworkFileError(LedgerError):
    """A network.json (what `admin deploy` writes) cannot be read, written or used."""


class ContractNotFound(LedgerError):
    """There is no contract code at the configured address."""


class InvalidInput(LedgerError, ValueError):
    """An argument is malformed; the message says which and why."""


class TransactionFailed(LedgerError):
    """The chain rejected or reverted a transaction for a non-contract reason."""


class InsufficientFunds(TransactionFailed):
    """The sending account has not enough ether to pay for gas."""


class ContractRejected(LedgerError):
    """The contract reverted with a custom error.

    `error_name` is the Solidity error name (e.g. ``AuditLedgerNotAdmin``) and
    `error_args` its decoded arguments (addresses checksummed, bytes32 as bytes).
    """

    def __init__(self, message: str, error_name: str, error_args: tuple[object, ...] = ()):
        super().__init__(message)
        self.error_name = error_name
        self.error_args = error_args


class NotAdmin(ContractRejected):
    """Only the consortium admin may do this."""


class NotRegistered(ContractRejected):
    """The address is not a registered node."""


class NodeRevoked(ContractRejected):
    """The node was revoked by the admin."""


class AlreadyRegistered(ContractRejected):
    """The address is (or was) already registered."""


class DuplicateContribution(ContractRejected):
    """This delta hash is already recorded."""


class AlreadyWithdrawn(ContractRejected):
    """This subject's consent is already withdrawn."""


class GenesisAlreadySet(ContractRejected):
    """The genesis model was already set."""


class StaleRound(ContractRejected):
    """The round is not above the node's last recorded round (one contribution per
    round, rounds strictly increasing per node)."""

    @property
    def node(self) -> str:
        return str(self.error_args[0])

    @property
    def round(self) -> int:
        return int(self.error_args[1])  # type: ignore[call-overload]

    @property
    def last_round(self) -> int:
        return int(self.error_args[2])  # type: ignore[call-overload]


class SampleCountOverCap(ContractRejected):
    """The sample count is above the cap the admin set for the node."""

    @property
    def node(self) -> str:
        return str(self.error_args[0])

    @property
    def sample_count(self) -> int:
        return int(self.error_args[1])  # type: ignore[call-overload]

    @property
    def sample_cap(self) -> int:
        return int(self.error_args[2])  # type: ignore[call-overload]


class WithdrawalNotSeen(ContractRejected):
    """A consent withdrawal was mined after the block up to which the node read
    withdrawals: it must check the round's subjects against it, then send again."""


class PrivacyBudgetExceeded(ContractRejected):
    """The record's epsilon, added to what the node already spent, is above the
    privacy budget the admin set for it. Arguments are micro-epsilon (exact); the
    float properties are epsilon."""

    @property
    def node(self) -> str:
        return str(self.error_args[0])

    @property
    def spent_micros(self) -> int:
        return int(self.error_args[1])  # type: ignore[call-overload]

    @property
    def epsilon_micros(self) -> int:
        return int(self.error_args[2])  # type: ignore[call-overload]

    @property
    def budget_micros(self) -> int:
        return int(self.error_args[3])  # type: ignore[call-overload]

    @property
    def spent(self) -> float:
        return self.spent_micros / EPSILON_SCALE

    @property
    def epsilon(self) -> float:
        return self.epsilon_micros / EPSILON_SCALE

    @property
    def budget(self) -> float:
        return self.budget_micros / EPSILON_SCALE


class RejectedArgument(ContractRejected):
    """The contract rejected a zero hash, zero address, empty peer ID or zero sample
    cap."""
