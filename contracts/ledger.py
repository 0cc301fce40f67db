"""The Python binding of AuditLedger: the only module of the project importing web3.

One `AuditLedger` object holds one account key (or none, for read-only use) and
manages that key's nonce locally under a lock, so worker threads of one process can
transact concurrently; two processes must not share a key. Every failure of web3,
eth-tester or the JSON-RPC endpoint is translated here, in `_translate`, into the
errors of `contracts.errors`. Calls are blocking; trio callers wrap them in
`trio.to_thread.run_sync`.

    ledger = AuditLedger.deploy("http://127.0.0.1:8545", admin_key)
    ledger.register_node(address, peer_id)
    node = AuditLedger(rpc_url, ledger.address, node_key)
    node.record_contribution(delta_hash, base_hash, round=3, sample_count=120,
                             data_root=root, epsilon_spent=0.42)
    node.contributions(node=node.account)
"""

from __future__ import annotations

import ast
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import eth_abi
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_checksum_address, is_hex_address, keccak, to_checksum_address
from web3 import Web3
from web3.types import RPCEndpoint
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)

from contracts.compile import Artifact, load_artifact
from contracts.errors import (
    AlreadyRegistered,
    AlreadyWithdrawn,
    ChainUnavailable,
    ContractNotFound,
    ContractRejected,
    DuplicateContribution,
    GenesisAlreadySet,
    InsufficientFunds,
    InvalidInput,
    LedgerError,
    NodeRevoked,
    NotAdmin,
    NotRegistered,
    RejectedArgument,
    TransactionFailed,
)
from contracts.records import (
    ConsentWithdrawn,
    ContributionRecorded,
    ContributionRef,
    GenesisModelSet,
    LedgerEvent,
    NodeInfo,
    NodeRegistered,
    NodeRevocation,
    TxResult,
)

__all__ = [
    "AuditLedger",
    "EPSILON_SCALE",
    "account_address",
    "epsilon_to_micros",
    "micros_to_epsilon",
    "new_private_key",
    "probe_chain",
    "send_ether",
]

log = logging.getLogger(__name__)

EPSILON_SCALE = 1_000_000
"""Epsilon travels on chain as an integer number of micro-epsilons."""

_UINT64_MAX = 2**64 - 1
_UINT32_MAX = 2**32 - 1
_MAX_PEER_ID_BYTES = 128
_ZERO32 = b"\x00" * 32

_ERROR_CLASSES: dict[str, type[ContractRejected]] = {
    "AuditLedgerNotAdmin": NotAdmin,
    "AuditLedgerNotRegistered": NotRegistered,
    "AuditLedgerNodeRevoked": NodeRevoked,
    "AuditLedgerAlreadyRegistered": AlreadyRegistered,
    "AuditLedgerDuplicateContribution": DuplicateContribution,
    "AuditLedgerAlreadyWithdrawn": AlreadyWithdrawn,
    "AuditLedgerGenesisAlreadySet": GenesisAlreadySet,
    "AuditLedgerZeroHash": RejectedArgument,
    "AuditLedgerZeroAddress": RejectedArgument,
    "AuditLedgerEmptyPeerId": RejectedArgument,
}

_ERROR_MESSAGES: dict[str, str] = {
    "AuditLedgerNotAdmin": "{0} is not the consortium admin",
    "AuditLedgerNotRegistered": "{0} is not a registered node",
    "AuditLedgerNodeRevoked": "node {0} has been revoked",
    "AuditLedgerAlreadyRegistered": "{0} is already registered (or was revoked)",
    "AuditLedgerDuplicateContribution": "delta {0} is already recorded",
    "AuditLedgerAlreadyWithdrawn": "consent of subject {0} is already withdrawn",
    "AuditLedgerGenesisAlreadySet": "the genesis model is already set ({0})",
    "AuditLedgerZeroHash": "the contract rejected a zero hash",
    "AuditLedgerZeroAddress": "the contract rejected the zero address",
    "AuditLedgerEmptyPeerId": "the contract rejected an empty peer ID",
}

T = TypeVar("T")


def epsilon_to_micros(epsilon: float) -> int:
    """Float epsilon -> the uint64 micro-epsilon the contract stores (rounded)."""
    if not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) or epsilon < 0:
        raise InvalidInput(f"epsilon_spent must be a finite number >= 0, got {epsilon!r}")
    micros = round(epsilon * EPSILON_SCALE)
    if micros > _UINT64_MAX:
        raise InvalidInput(f"epsilon_spent {epsilon} is too large for uint64 micro-epsilon")
    return micros


def micros_to_epsilon(micros: int) -> float:
    """The contract's micro-epsilon -> float epsilon."""
    return micros / EPSILON_SCALE


def probe_chain(rpc_url: str, timeout: float = 1.0) -> int:
    """The chain id at `rpc_url`; ChainUnavailable if nothing answers."""
    w3 = _http_web3(rpc_url, timeout)
    try:
        return int(w3.eth.chain_id)
    except (requests.RequestException, OSError, ValueError, Web3RPCError) as exc:
        raise ChainUnavailable(f"no chain answers at {rpc_url}: {type(exc).__name__}") from exc


def send_ether(rpc_url: str, from_key: str | bytes, to_address: str, amount_wei: int) -> TxResult:
    """Transfer ether (e.g. fund a fresh node key from a devnet account) and wait."""
    handle = AuditLedger(rpc_url, "0x" + "00" * 20, from_key)
    return handle.wait_for(
        handle._submit(b"", 21_000, to=_address(to_address, "recipient"),
                       value=_uint(amount_wei, 2**256 - 1, "amount"))
    )


def new_private_key() -> str:
    """A fresh secp256k1 private key as 0x-prefixed hex (from the OS CSPRNG)."""
    return "0x" + bytes(Account.create().key).hex()


def account_address(private_key: str | bytes) -> str:
    """The checksummed address of a private key (InvalidInput if malformed)."""
    return str(_account(private_key).address)


# ---------------------------------------------------------------------------- input


def _hash32(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"{what} must be 32 bytes, got {type(value).__name__}")
    raw = bytes(value)
    if len(raw) != 32:
        raise InvalidInput(f"{what} must be 32 bytes, got {len(raw)} bytes")
    return raw


def _nonzero_hash32(value: object, what: str) -> bytes:
    raw = _hash32(value, what)
    if raw == _ZERO32:
        raise InvalidInput(f"{what} must not be all zeros")
    return raw


def _address(value: object, what: str = "address") -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a 0x-prefixed hex string, got {type(value).__name__}")
    if not is_hex_address(value):
        raise InvalidInput(f"{what} {value!r} is not a 20-byte hex address")
    body = value[2:] if value.startswith(("0x", "0X")) else value
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise InvalidInput(f"{what} {value!r} has an invalid EIP-55 checksum")
    return to_checksum_address(value)


def _uint(value: object, bits_max: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= bits_max:
        raise InvalidInput(f"{what} must be in [0, {bits_max}], got {value}")
    return value


def _account(private_key: str | bytes) -> LocalAccount:
    raw: bytes
    if isinstance(private_key, (bytes, bytearray)):
        raw = bytes(private_key)
    elif isinstance(private_key, str):
        text = private_key.strip().removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise InvalidInput("private key must be 64 hex characters") from exc
    else:
        raise InvalidInput(f"private key must be hex str or bytes, got {type(private_key).__name__}")
    if len(raw) != 32:
        raise InvalidInput(f"private key must be 32 bytes (64 hex characters), got {len(raw)} bytes")
    try:
        return Account.from_key(raw)
    except (ValueError, TypeError) as exc:  # eth_keys: out of the secp256k1 range
        raise InvalidInput("private key is not a valid secp256k1 secret") from exc


# ------------------------------------------------------------------------------ ABI


@dataclass(frozen=True)
class _Function:
    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def calldata(self, args: Sequence[object]) -> bytes:
        return self.selector + eth_abi.encode(list(self.inputs), list(args))


@dataclass(frozen=True)
class _Event:
    name: str
    topic: str  # 0x-hex of keccak(signature)
    data_types: tuple[str, ...]


class _Abi:
    """Selectors, error table and event topics derived once from the artifact ABI."""

    def __init__(self, abi: list[dict[str, Any]]):
        self.functions: dict[str, _Function] = {}
        self.errors: dict[bytes, tuple[str, tuple[str, ...]]] = {}
        self.events: dict[str, _Event] = {}
        for item in abi:
            kind = item.get("type")
            if kind not in {"function", "error", "event"}:
                continue
            types = tuple(str(arg["type"]) for arg in item["inputs"])
            signature = f"{item['name']}({','.join(types)})"
            if kind == "function":
                outputs = tuple(str(arg["type"]) for arg in item["outputs"])
                self.functions[item["name"]] = _Function(
                    item["name"], keccak(text=signature)[:4], types, outputs
                )
            elif kind == "error":
                self.errors[keccak(text=signature)[:4]] = (item["name"], types)
            else:
                data_types = tuple(
                    str(arg["type"]) for arg in item["inputs"] if not arg["indexed"]
                )
                self.events[item["name"]] = _Event(
                    item["name"], "0x" + keccak(text=signature).hex(), data_types
                )


# ------------------------------------------------------------------ translation


def _revert_data(exc: BaseException) -> bytes | None:
    """Find raw revert data in any backend's exception (walking its causes).

    anvil (via web3): ContractCustomError.data = "0x<selector><args>".
    eth-tester: TransactionFailed("execution reverted: b'<selector><args>'"), raised
    from an eth-tester TransactionFailed whose first argument holds the bytes.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        data = getattr(current, "data", None)
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                pass
        for arg in current.args:
            if isinstance(arg, (bytes, bytearray)) and len(arg) >= 4:
                return bytes(arg)
            if isinstance(arg, BaseException):
                inner = _revert_data(arg)
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


# ---------------------------------------------------------------------------- class


class AuditLedger:
    """A handle on one deployed AuditLedger contract, optionally with a sending key."""

    def __init__(
        self,
        rpc_url: str,
        address: str,
        private_key: str | bytes | None = None,
        *,
        timeout: float = 10.0,
        log_chunk_blocks: int = 50_000,
    ) -> None:
        if not isinstance(rpc_url, str) or not rpc_url.startswith(("http://", "https://")):
            raise InvalidInput(f"rpc_url must be an http(s) URL, got {rpc_url!r}")
        w3 = _http_web3(rpc_url, timeout)
        self._setup(w3, address, private_key, log_chunk_blocks, rpc_url)

    @classmethod
    def from_web3(
        cls,
        w3: Web3,
        address: str,
        private_key: str | bytes | None = None,
        *,
        log_chunk_blocks: int = 50_000,
    ) -> AuditLedger:
        """Use an existing Web3 (e.g. eth-tester in-process) instead of an RPC URL."""
        self = cls.__new__(cls)
        self._setup(w3, address, private_key, log_chunk_blocks, None)
        return self

    @classmethod
    def deploy(cls, rpc_url: str, admin_key: str | bytes, *, timeout: float = 10.0) -> AuditLedger:
        """Deploy a new AuditLedger whose admin is `admin_key`'s address."""
        if not isinstance(rpc_url, str) or not rpc_url.startswith(("http://", "https://")):
            raise InvalidInput(f"rpc_url must be an http(s) URL, got {rpc_url!r}")
        w3 = _http_web3(rpc_url, timeout)
        return cls._deploy(w3, admin_key, rpc_url)

    @classmethod
    def deploy_with_web3(cls, w3: Web3, admin_key: str | bytes) -> AuditLedger:
        """`deploy` on an existing Web3 (eth-tester in-process)."""
        return cls._deploy(w3, admin_key, None)

    @classmethod
    def _deploy(cls, w3: Web3, admin_key: str | bytes, rpc_url: str | None) -> AuditLedger:
        artifact = load_artifact()
        sender = cls.__new__(cls)
        sender._setup(w3, "0x" + "00" * 20, admin_key, 50_000, rpc_url)
        tx_hash = sender._submit(b"", None, create=bytes.fromhex(artifact.bytecode[2:]))
        receipt = sender.wait_for(tx_hash)
        if receipt.contract_address is None:
            raise TransactionFailed(f"deployment {tx_hash} created no contract")
        sender._address = receipt.contract_address
        sender.deployment = receipt
        log.info("deployed AuditLedger at %s (gas %d)", receipt.contract_address, receipt.gas_used)
        return sender

    def _setup(
        self,
        w3: Web3,
        address: str,
        private_key: str | bytes | None,
        log_chunk_blocks: int,
        rpc_url: str | None,
    ) -> None:
        self._w3 = w3
        self._rpc_url = rpc_url
        self._address = _address(address, "contract address")
        self._signer = _account(private_key) if private_key is not None else None
        self._artifact: Artifact = load_artifact()
        self._abi = _Abi(self._artifact.abi)
        self._nonce_lock = threading.Lock()
        self._next_nonce: int | None = None
        self._chain_id: int | None = None
        self._fee_cache: tuple[float, int] | None = None
        self._log_chunk_blocks = max(1, log_chunk_blocks)
        self.deployment: TxResult | None = None
        """The deployment transaction, when this object deployed the contract."""

    # ---------------------------------------------------------------- properties

    @property
    def address(self) -> str:
        """The contract address (checksummed)."""
        return self._address

    @property
    def account(self) -> str | None:
        """The sending account's address, or None for a read-only handle."""
        return self._signer.address if self._signer is not None else None

    @property
    def rpc_url(self) -> str | None:
        return self._rpc_url

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self._rpc(lambda: int(self._w3.eth.chain_id))
        return self._chain_id

    def block_number(self) -> int:
        """The latest block number."""
        return self._rpc(lambda: int(self._w3.eth.block_number))

    def has_code(self) -> bool:
        """True when there is contract code at `address` (False after a chain reset)."""
        return len(self._rpc(lambda: bytes(self._w3.eth.get_code(self._address)))) > 0

    def balance(self, address: str | None = None) -> int:
        """Balance in wei of `address` (default: this handle's account)."""
        target = _address(address) if address is not None else self._require_signer().address
        return self._rpc(lambda: int(self._w3.eth.get_balance(target)))

    # -------------------------------------------------------------------- admin

    def register_node(self, address: str, peer_id: bytes) -> TxResult:
        """Register a node (admin only). Emits NodeRegistered."""
        node = _address(address, "node address")
        if not isinstance(peer_id, (bytes, bytearray)) or not peer_id:
            raise InvalidInput("peer_id must be non-empty bytes (the raw peer ID multihash)")
        if len(peer_id) > _MAX_PEER_ID_BYTES:
            raise InvalidInput(f"peer_id is {len(peer_id)} bytes, at most {_MAX_PEER_ID_BYTES}")
        return self._transact("registerNode", (node, bytes(peer_id)))

    def revoke_node(self, address: str) -> TxResult:
        """Revoke a node (admin only). Emits NodeRevoked."""
        return self._transact("revokeNode", (_address(address, "node address"),))

    def set_genesis_model(self, model_hash: bytes) -> TxResult:
        """Fix the genesis model hash, once (admin only). Emits GenesisModelSet."""
        return self._transact("setGenesisModel", (_nonzero_hash32(model_hash, "model_hash"),))

    # --------------------------------------------------------------------- node

    def record_contribution(
        self,
        delta_hash: bytes,
        base_model_hash: bytes,
        round: int,
        sample_count: int,
        data_root: bytes,
        epsilon_spent: float,
    ) -> TxResult:
        """Record a contribution of this handle's node and wait for it to be mined."""
        return self.wait_for(
            self.submit_contribution(
                delta_hash, base_model_hash, round, sample_count, data_root, epsilon_spent
            )
        )

    def submit_contribution(
        self,
        delta_hash: bytes,
        base_model_hash: bytes,
        round: int,
        sample_count: int,
        data_root: bytes,
        epsilon_spent: float,
        *,
        gas: int | None = None,
    ) -> str:
        """Send a contribution without waiting; returns the tx hash (see `wait_for`).

        With `gas` given, gas estimation (and its early revert check) is skipped:
        a reverted transaction then surfaces in `wait_for`.
        """
        args = (
            _nonzero_hash32(delta_hash, "delta_hash"),
            _hash32(base_model_hash, "base_model_hash"),
            _uint(round, _UINT64_MAX, "round"),
            _uint(sample_count, _UINT32_MAX, "sample_count"),
            _hash32(data_root, "data_root"),
            epsilon_to_micros(epsilon_spent),
        )
        return self._submit(self._abi.functions["recordContribution"].calldata(args), gas)

    def withdraw_consent(self, subject: bytes) -> TxResult:
        """Withdraw a subject's consent as its custodian node."""
        return self._transact("withdrawConsent", (_nonzero_hash32(subject, "subject commitment"),))

    def withdraw_consent_with_token(self, token: bytes) -> TxResult:
        """Withdraw consent by revealing the subject's 32-byte token (any sender)."""
        return self._transact("withdrawConsentWithToken", (_nonzero_hash32(token, "consent token"),))

    # -------------------------------------------------------------------- views

    def admin(self) -> str:
        """The consortium admin address."""
        (value,) = self._view("admin", ())
        return to_checksum_address(value)

    def genesis_model(self) -> bytes | None:
        """The genesis model hash, or None when not set."""
        (value,) = self._view("genesisModel", ())
        return None if value == _ZERO32 else bytes(value)

    def contribution(self, delta_hash: bytes) -> ContributionRef | None:
        """Who recorded `delta_hash`, in which round, with how many samples (one call)."""
        author, round_, samples = self._view("contribution", (_hash32(delta_hash, "delta_hash"),))
        if int(author, 16) == 0:
            return None
        return ContributionRef(to_checksum_address(author), int(round_), int(samples))

    def is_withdrawn(self, subject: bytes) -> bool:
        """Whether the subject's consent is withdrawn."""
        (value,) = self._view("isWithdrawn", (_hash32(subject, "subject commitment"),))
        return bool(value)

    def node_info(self, address: str) -> NodeInfo | None:
        """The node registered at `address` (active or revoked), or None if never."""
        node = _address(address, "node address")
        active, peer_id = self._view("nodeInfo", (node,))
        if not peer_id:
            return None
        return NodeInfo(address=node, peer_id=bytes(peer_id), active=bool(active))

    def is_active_node(self, address: str) -> bool:
        """True when `address` is a registered, non-revoked node."""
        info = self.node_info(address)
        return info is not None and info.active

    # ------------------------------------------------------------------- events

    def contributions(
        self,
        node: str | None = None,
        round: int | None = None,
        delta_hash: bytes | None = None,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[ContributionRecorded]:
        """ContributionRecorded events, filtered on the indexed fields, oldest first."""
        topics: list[str | None] = [
            self._abi.events["ContributionRecorded"].topic,
            None if delta_hash is None else "0x" + _hash32(delta_hash, "delta_hash").hex(),
            None if node is None else _topic_address(_address(node, "node address")),
            None if round is None else _topic_uint(_uint(round, _UINT64_MAX, "round")),
        ]
        out: list[ContributionRecorded] = []
        for entry in self._logs(topics, from_block, to_block):
            base, samples, root, micros = self._decode_data("ContributionRecorded", entry)
            t = entry["topics"]
            out.append(
                ContributionRecorded(
                    delta_hash=_topic_bytes(t[1]),
                    node=_topic_to_address(t[2]),
                    round=int.from_bytes(_topic_bytes(t[3]), "big"),
                    base_model_hash=bytes(base),
                    sample_count=int(samples),
                    data_root=bytes(root),
                    epsilon_spent=micros_to_epsilon(int(micros)),
                    block_number=_int(entry["blockNumber"]),
                    tx_hash=_hex(entry["transactionHash"]),
                )
            )
        return out

    def withdrawals(
        self,
        subject: bytes | None = None,
        from_block: int = 0,
        to_block: int | None = None,
        by: str | None = None,
    ) -> list[ConsentWithdrawn]:
        """ConsentWithdrawn events, filtered by subject / sender, oldest first."""
        topics: list[str | None] = [
            self._abi.events["ConsentWithdrawn"].topic,
            None if subject is None else "0x" + _hash32(subject, "subject commitment").hex(),
            None if by is None else _topic_address(_address(by, "sender address")),
        ]
        out: list[ConsentWithdrawn] = []
        for entry in self._logs(topics, from_block, to_block):
            (by_token,) = self._decode_data("ConsentWithdrawn", entry)
            t = entry["topics"]
            out.append(
                ConsentWithdrawn(
                    subject=_topic_bytes(t[1]),
                    by=_topic_to_address(t[2]),
                    by_token=bool(by_token),
                    block_number=_int(entry["blockNumber"]),
                    tx_hash=_hex(entry["transactionHash"]),
                )
            )
        return out

    def node_registrations(self, from_block: int = 0, to_block: int | None = None) -> list[NodeRegistered]:
        """NodeRegistered events, oldest first (current status: `node_info`)."""
        topics: list[str | None] = [self._abi.events["NodeRegistered"].topic]
        out: list[NodeRegistered] = []
        for entry in self._logs(topics, from_block, to_block):
            (peer_id,) = self._decode_data("NodeRegistered", entry)
            out.append(
                NodeRegistered(
                    node=_topic_to_address(entry["topics"][1]),
                    peer_id=bytes(peer_id),
                    block_number=_int(entry["blockNumber"]),
                    tx_hash=_hex(entry["transactionHash"]),
                )
            )
        return out

    def registered_nodes(self) -> list[NodeInfo]:
        """Every node ever registered, with its current status."""
        infos = (self.node_info(reg.node) for reg in self.node_registrations())
        return [info for info in infos if info is not None]

    # ------------------------------------------------------------- transactions

    def wait_for(self, tx_hash: str, timeout: float = 60.0) -> TxResult:
        """Wait until `tx_hash` is mined; raise the project error if it reverted."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                receipt = self._rpc(lambda: self._w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
                break
            except TransactionNotFound:
                pass
            if time.monotonic() > deadline:
                raise TransactionFailed(f"transaction {tx_hash} not mined within {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        if receipt["status"] != 1:
            self._explain_failed(tx_hash, receipt)
        created = receipt.get("contractAddress")
        return TxResult(
            tx_hash=_hex(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            event=self._first_event(receipt["logs"]),
            contract_address=to_checksum_address(created) if created else None,
        )

    def _transact(self, function: str, args: Sequence[object]) -> TxResult:
        return self.wait_for(self._submit(self._abi.functions[function].calldata(args), None))

    def _require_signer(self) -> LocalAccount:
        if self._signer is None:
            raise InvalidInput("this ledger handle has no private key; pass one to send transactions")
        return self._signer

    def _submit(
        self,
        calldata: bytes,
        gas: int | None,
        *,
        create: bytes | None = None,
        to: str | None = None,
        value: int = 0,
    ) -> str:
        """Estimate (unless `gas`), sign with the local nonce, send; return the tx hash."""
        signer = self._require_signer()
        chain_id = self.chain_id
        tx: dict[str, Any] = {"from": signer.address, "value": value, "chainId": chain_id}
        if create is not None:
            tx["data"] = create
        else:
            tx["to"] = to if to is not None else self._address
            tx["data"] = calldata
        if gas is None:
            estimate = self._rpc(lambda: int(self._w3.eth.estimate_gas(tx)))  # type: ignore[arg-type]
            gas = estimate + estimate // 4 + 10_000
        tx["gas"] = gas
        max_fee, priority = self._fees()
        tx["maxFeePerGas"] = max_fee
        tx["maxPriorityFeePerGas"] = priority
        del tx["from"]
        for attempt in range(3):
            with self._nonce_lock:
                if self._next_nonce is None:
                    self._next_nonce = self._rpc(
                        lambda: int(self._w3.eth.get_transaction_count(signer.address, "pending"))
                    )
                tx["nonce"] = self._next_nonce
                raw = signer.sign_transaction(tx).raw_transaction
                try:
                    tx_hash = self._rpc(lambda: self._w3.eth.send_raw_transaction(raw))
                except TransactionFailed as exc:
                    self._next_nonce = None  # re-read from the chain next time
                    if "nonce" in str(exc).lower() and attempt < 2:
                        log.info("nonce out of sync for %s, refreshing", signer.address)
                        continue
                    raise
                self._next_nonce += 1
            return _hex(tx_hash)
        raise TransactionFailed("could not find a valid nonce")  # pragma: no cover

    def _fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): generous on a devnet, cached 5 s."""
        now = time.monotonic()
        if self._fee_cache is None or now - self._fee_cache[0] > 5.0:
            price = self._rpc(lambda: int(self._w3.eth.gas_price))
            self._fee_cache = (now, price)
        price = self._fee_cache[1]
        priority = min(price, 1_000_000_000)
        return 2 * price + priority, priority

    def _explain_failed(self, tx_hash: str, receipt: Any) -> None:
        """A mined transaction reverted: replay it as a call to learn the reason."""
        tx = self._rpc(lambda: self._w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        self._rpc(lambda: self._w3.eth.call(call, int(receipt["blockNumber"])))  # type: ignore[arg-type]
        raise TransactionFailed(
            f"transaction {tx_hash} reverted in block {receipt['blockNumber']} "
            f"(gas used {receipt['gasUsed']} of {tx['gas']})"
        )

    # ---------------------------------------------------------------- internals

    def _view(self, function: str, args: Sequence[object]) -> tuple[Any, ...]:
        fn = self._abi.functions[function]
        call = {"to": self._address, "data": fn.calldata(args)}
        raw = self._rpc(lambda: bytes(self._w3.eth.call(call)))  # type: ignore[arg-type]
        if not raw:
            raise ContractNotFound(f"no AuditLedger contract at {self._address}")
        try:
            return tuple(eth_abi.decode(list(fn.outputs), raw))
        except eth_abi.exceptions.DecodingError as exc:
            raise ContractNotFound(
                f"the contract at {self._address} does not answer like AuditLedger"
            ) from exc

    def _logs(
        self, topics: list[str | None], from_block: int, to_block: int | None
    ) -> Iterator[Any]:
        start = _uint(from_block, _UINT64_MAX, "from_block")
        end = self.block_number() if to_block is None else _uint(to_block, _UINT64_MAX, "to_block")
        while topics and topics[-1] is None:
            topics = topics[:-1]
        while start <= end:
            stop = min(end, start + self._log_chunk_blocks - 1)
            params = {
                "address": self._address,
                "fromBlock": hex(start),
                "toBlock": hex(stop),
                "topics": topics,
            }
            yield from self._rpc(lambda: self._raw_logs(params))
            start = stop + 1

    def _raw_logs(self, params: dict[str, Any]) -> list[Any]:
        """eth_getLogs; over HTTP the raw JSON is used as is (web3's per-log result
        formatting costs more than the query itself for thousands of logs)."""
        if not isinstance(self._w3.provider, Web3.HTTPProvider):
            return list(self._w3.eth.get_logs(params))  # type: ignore[arg-type]
        response = self._w3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
        if "error" in response:
            raise Web3RPCError(str(response["error"]), rpc_response=response)
        return list(response["result"])

    def _decode_data(self, event: str, entry: Any) -> tuple[Any, ...]:
        types = self._abi.events[event].data_types
        data = _topic_bytes(entry["data"])
        if all(t == "bytes32" or t == "bool" or t.startswith("uint") for t in types) and len(
            data
        ) == 32 * len(types):
            # Static words only: slice them (eth_abi costs ~10x more per log, and an
            # audit query may decode thousands of logs).
            words = [data[32 * i : 32 * (i + 1)] for i in range(len(types))]
            return tuple(
                word if t == "bytes32" else (word[-1] == 1 if t == "bool" else int.from_bytes(word, "big"))
                for t, word in zip(types, words)
            )
        return tuple(eth_abi.decode(list(types), data))

    def _first_event(self, logs: Sequence[Any]) -> LedgerEvent | None:
        by_topic = {e.topic: e.name for e in self._abi.events.values()}
        for entry in logs:
            if not entry["topics"] or _hex(entry["address"]).lower() != self._address.lower():
                continue
            name = by_topic.get(_hex(entry["topics"][0]))
            t = entry["topics"]
            block = _int(entry["blockNumber"])
            tx_hash = _hex(entry["transactionHash"])
            if name == "ContributionRecorded":
                base, samples, root, micros = self._decode_data(name, entry)
                return ContributionRecorded(
                    _topic_bytes(t[1]), _topic_to_address(t[2]),
                    int.from_bytes(_topic_bytes(t[3]), "big"), bytes(base), int(samples),
                    bytes(root), micros_to_epsilon(int(micros)), block, tx_hash,
                )
            if name == "ConsentWithdrawn":
                (by_token,) = self._decode_data(name, entry)
                return ConsentWithdrawn(
                    _topic_bytes(t[1]), _topic_to_address(t[2]), bool(by_token), block, tx_hash
                )
            if name == "NodeRegistered":
                (peer_id,) = self._decode_data(name, entry)
                return NodeRegistered(_topic_to_address(t[1]), bytes(peer_id), block, tx_hash)
            if name == "NodeRevoked":
                return NodeRevocation(_topic_to_address(t[1]), block, tx_hash)
            if name == "GenesisModelSet":
                return GenesisModelSet(_topic_bytes(t[1]), block, tx_hash)
        return None

    def _rpc(self, call: Callable[[], T]) -> T:
        """Run one RPC call, translating every backend failure (the one place)."""
        try:
            return call()
        except LedgerError:
            raise
        except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
            where = self._rpc_url or "the chain"
            raise ChainUnavailable(f"cannot reach the chain at {where}: {type(exc).__name__}") from exc
        except TimeExhausted as exc:
            raise ChainUnavailable(f"the chain did not answer in time: {exc}") from exc
        except BadFunctionCallOutput as exc:
            raise ContractNotFound(f"no AuditLedger contract at {self._address}") from exc
        except TransactionNotFound:
            raise
        except Exception as exc:  # the boundary: web3, eth-tester, py-evm, requests
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> LedgerError:
        data = _revert_data(exc)
        if data is not None and data[:4] in self._abi.errors:
            name, types = self._abi.errors[data[:4]]
            try:
                decoded = tuple(eth_abi.decode(list(types), data[4:]))
            except eth_abi.exceptions.DecodingError:
                decoded = ()
            values = tuple(
                to_checksum_address(v) if t == "address" else v for t, v in zip(types, decoded)
            )
            message = _ERROR_MESSAGES[name].format(*(_format_arg(v) for v in values))
            return _ERROR_CLASSES[name](message, name, values)
        message = _message_of(exc)
        lowered = message.lower()
        if "insufficient funds" in lowered or "cannot afford" in lowered:
            return InsufficientFunds(f"the sending account cannot pay for gas: {message}")
        if isinstance(exc, (ContractLogicError,)) or "revert" in lowered:
            return TransactionFailed(f"the transaction reverted: {message}")
        if isinstance(exc, requests.HTTPError):
            return ChainUnavailable(f"the chain's RPC answered with an HTTP error: {message}")
        return TransactionFailed(f"{type(exc).__name__}: {message}")


# --------------------------------------------------------------------- topic helpers


def _http_web3(rpc_url: str, timeout: float) -> Web3:
    # No retry loop in web3: a stopped chain must fail fast as ChainUnavailable.
    provider = Web3.HTTPProvider(
        rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
    )
    return Web3(provider)


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _topic_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def _topic_to_address(value: Any) -> str:
    raw = value[-40:].lower() if isinstance(value, str) else bytes(value)[-20:].hex()
    return _checksum(raw)


@functools.lru_cache(maxsize=4096)
def _checksum(address_hex: str) -> str:
    return str(to_checksum_address("0x" + address_hex))


def _topic_address(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _topic_uint(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()
