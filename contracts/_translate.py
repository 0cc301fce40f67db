"""The one place where a failure of web3, eth-tester, anvil, Hardhat, geth or the
JSON-RPC transport becomes an error of `contracts.errors` (`raise ... from exc`).

Custom errors are found by their 4-byte selector, which `CustomErrors` derives from the
contract ABI. `CUSTOM_ERRORS` gives each one our class and message: a new custom
error in AuditLedger.sol is one line there (a test checks that every error of the ABI
has its line; one without a line still arrives as a plain `ContractRejected`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import eth_abi
import requests
from eth_utils import keccak, to_checksum_address
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)

from contracts.errors import (
    AlreadyRegistered,
    AlreadyWithdrawn,
    ChainUnavailable,
    ContractNotFound,
    ContractRejected,
    DuplicateContribution,
    GenesisAlreadySet,
    InsufficientFunds,
    LedgerError,
    NodeRevoked,
    NotAdmin,
    NotRegistered,
    PrivacyBudgetExceeded,
    RejectedArgument,
    SampleCountOverCap,
    StaleRound,
    TransactionFailed,
    WithdrawalNotSeen,
)

__all__ = ["CUSTOM_ERRORS", "Boundary", "CustomErrors", "is_range_refusal", "mined_anyway"]

T = TypeVar("T")

CUSTOM_ERRORS: Mapping[str, tuple[type[ContractRejected], str]] = {
    # Solidity error name: (our class, message; {0}, {1}... are the error's arguments)
    "AuditLedgerNotAdmin": (NotAdmin, "{0} is not the consortium admin"),
    "AuditLedgerNotRegistered": (NotRegistered, "{0} is not a registered node"),
    "AuditLedgerNodeRevoked": (NodeRevoked, "node {0} has been revoked"),
    "AuditLedgerAlreadyRegistered": (AlreadyRegistered, "{0} is already registered (or was revoked)"),
    "AuditLedgerDuplicateContribution": (DuplicateContribution, "delta {0} is already recorded"),
    "AuditLedgerAlreadyWithdrawn": (AlreadyWithdrawn, "consent of subject {0} is already withdrawn"),
    "AuditLedgerWithdrawalNotSeen": (
        WithdrawalNotSeen, "a consent withdrawal was mined in block {1}, after block {0} up to which the node checked"
    ),
    "AuditLedgerGenesisAlreadySet": (GenesisAlreadySet, "the genesis model is already set ({0})"),
    "AuditLedgerZeroHash": (RejectedArgument, "the contract rejected a zero hash"),
    "AuditLedgerZeroAddress": (RejectedArgument, "the contract rejected the zero address"),
    "AuditLedgerEmptyPeerId": (RejectedArgument, "the contract rejected an empty peer ID"),
    "AuditLedgerZeroSampleCap": (RejectedArgument, "the contract rejected a zero sample cap"),
    "AuditLedgerStaleRound": (StaleRound, "node {0} cannot record round {1}: its last round is {2}"),
    "AuditLedgerSampleCountOverCap": (SampleCountOverCap, "node {0} declared {1} samples, above its cap of {2}"),
    "AuditLedgerPrivacyBudgetExceeded": (
        PrivacyBudgetExceeded,
        "node {0} cannot spend {2} more micro-epsilon: it has spent {1} of its budget of {3}",
    ),
}


@dataclass(frozen=True)
class _ErrorAbi:
    name: str
    types: tuple[str, ...]


class CustomErrors:
    """The contract's custom errors by selector, derived once from its ABI."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self.by_selector: dict[bytes, _ErrorAbi] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            types = tuple(str(arg["type"]) for arg in item["inputs"])
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            self.by_selector[selector] = _ErrorAbi(str(item["name"]), types)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(e.name for e in self.by_selector.values())

    def decode(self, data: bytes) -> ContractRejected | None:
        """Our error for revert `data` (selector + ABI-encoded arguments), if it is one."""
        spec = self.by_selector.get(data[:4])
        if spec is None:
            return None
        try:
            decoded = tuple(eth_abi.decode(list(spec.types), data[4:]))
        except eth_abi.exceptions.DecodingError:
            decoded = ()
        values = tuple(
            to_checksum_address(v) if t == "address" else v for t, v in zip(spec.types, decoded)
        )
        shown = [_format_arg(v) for v in values]
        cls, template = CUSTOM_ERRORS.get(
            spec.name, (ContractRejected, f"the contract rejected the call: {spec.name}({', '.join(shown)})")
        )
        return cls(template.format(*shown), spec.name, values)


@dataclass(frozen=True)
class Boundary:
    """Runs one RPC call and translates whatever it raises; `where` and `contract`
    only word the messages."""

    errors: CustomErrors
    where: str | None
    contract: str | None = None

    def run(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except LedgerError:
            raise
        except TransactionNotFound:
            raise  # not an error: "not mined yet", the sender's wait loop polls on it
        except Exception as exc:  # the boundary: web3, eth-tester, py-evm, requests
            raise self.translate(exc) from exc

    def translate(self, exc: Exception) -> LedgerError:
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            where = self.where or "the chain"
            return ChainUnavailable(f"cannot reach the chain at {where}: {type(exc).__name__}")
        if isinstance(exc, TimeExhausted):
            return ChainUnavailable(f"the chain did not answer in time: {exc}")
        if isinstance(exc, BadFunctionCallOutput):
            return ContractNotFound(f"no AuditLedger contract at {self.contract}")
        data = revert_data(exc)
        if data is not None:
            custom = self.errors.decode(data)
            if custom is not None:
                return custom
        message = _message_of(exc)
        if _NO_FUNDS.search(message):
            return InsufficientFunds(f"the sending account cannot pay for gas: {message}")
        lowered = message.lower()
        if isinstance(exc, ContractLogicError) or "revert" in lowered:
            return TransactionFailed(f"the transaction reverted: {message}")
        if isinstance(exc, requests.HTTPError):
            return ChainUnavailable(f"the chain's RPC answered with an HTTP error: {message}")
        return TransactionFailed(f"{type(exc).__name__}: {message}")


_NO_FUNDS = re.compile(r"insufficient funds|cannot afford|doesn't have enough funds", re.IGNORECASE)
"""How chains word "the sender cannot pay": geth and anvil ("insufficient funds for gas *
price + value"), eth-tester ("cannot afford"), Hardhat ("Sender doesn't have enough funds
to send tx")."""

_LIMIT_EXCEEDED = -32005
"""EIP-1474 "limit exceeded": what geth-family and Besu servers answer to a log query
over their cap (also some rate limits: see `_RATE`)."""

_RANGE = re.compile(
    r"block range|range (is )?too|range exceed|range limit|limited to|too (large|wide|big)"
    r"|limit exceeded|exceed(s|ed)? (the )?(max|limit)|more than \d+ (results|logs|blocks)"
    r"|response size|max(imum)? (block )?range|too many (blocks|results|logs)",
    re.IGNORECASE,
)
"""How servers word "ask for fewer blocks" (Besu, geth, Erigon, Alchemy, Infura,
QuickNode, Ankr, BSC, Chainstack, ...)."""

_RATE = re.compile(r"\brate\b|rate.?limit|too many requests|per second|daily|quota|credits", re.IGNORECASE)
"""A rate limit is not a range refusal: narrowing the range would only send more."""


def is_range_refusal(exc: BaseException) -> bool:
    """Whether a failed eth_getLogs is the server refusing the block range as too
    large (an RPC answer, not a transport failure), so a narrower range may pass."""
    if not isinstance(exc, (Web3RPCError, ValueError)):
        return False
    message = _message_of(exc)
    if _RATE.search(message):
        return False
    return _rpc_code(exc) == _LIMIT_EXCEEDED or _RANGE.search(message) is not None


def _rpc_code(exc: BaseException) -> int | None:
    code = _rpc_error(exc).get("code")
    return code if isinstance(code, int) else None


def _rpc_error(exc: BaseException) -> Mapping[str, Any]:
    """The JSON-RPC `error` object a Web3RPCError carries ({} for anything else)."""
    response = getattr(exc, "rpc_response", None)
    error = response.get("error") if isinstance(response, Mapping) else None
    return error if isinstance(error, Mapping) else {}


def mined_anyway(exc: BaseException) -> str | None:
    """The hash of a transaction the chain mined although sending it failed, or None.

    Hardhat, automining, mines a transaction that reverts and answers its
    eth_sendRawTransaction with the revert as an error, the hash in error.data.txHash;
    the nonce is used. Other chains (anvil, geth) accept the transaction and report the
    revert only in its receipt. With the hash, the sender answers as they do.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        data = _rpc_error(current).get("data")
        tx_hash = data.get("txHash") if isinstance(data, Mapping) else None
        if isinstance(tx_hash, str) and re.fullmatch(r"0x[0-9a-fA-F]{64}", tx_hash):
            return tx_hash
        current = current.__cause__ or current.__context__
    return None


def revert_data(exc: BaseException) -> bytes | None:
    """Find raw revert data in any backend's exception (walking its causes).

    anvil and geth (via web3): ContractCustomError.data = "0x<selector><args>".
    Hardhat (EDR): JSON-RPC code -32603 with error.data = {"message": ..., "data":
    "0x<selector><args>"}, which web3 passes on as ContractLogicError.data, a dict (or,
    from eth_sendRawTransaction, only in Web3RPCError.rpc_response: see `mined_anyway`).
    eth-tester: TransactionFailed("execution reverted: b'<selector><args>'"), raised
    from an eth-tester TransactionFailed whose first argument holds the bytes.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        data = getattr(current, "data", None)
        if data is None:
            data = _rpc_error(current).get("data")
        if isinstance(data, Mapping):  # Hardhat: the hex sits one level down
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                pass
        for arg in current.args:
            if isinstance(arg, (bytes, bytearray)) and len(arg) >= 4:
                return bytes(arg)
            if isinstance(arg, BaseException):
                inner = revert_data(arg)
                if inner is not None:
                    return inner
            if isinstance(arg, str) and arg.startswith("execution reverted: b"):
                try:
                    literal = ast.literal_eval(arg.removeprefix("execution reverted: "))
                except (ValueError, SyntaxError):
                    literal = None
                if isinstance(literal, bytes) and len(literal) >= 4:
                    return literal
        current = current.__cause__ or current.__context__
    return None


def _format_arg(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _message_of(exc: BaseException) -> str:
    if isinstance(exc, Web3RPCError):
        response = exc.rpc_response or {}
        error = response.get("error") if isinstance(response, dict) else None
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        return str(exc.message)
    return str(exc.args[0]) if exc.args else type(exc).__name__
