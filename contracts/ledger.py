"""The Python binding of AuditLedger: its public API, `AuditLedger`.

One `AuditLedger` object holds one account key (or none, for read-only use). Calls are
blocking; trio callers wrap them in `trio.to_thread.run_sync`. The work is done by
private parts, each the one place for its concern:

    _args.py       argument checks -> InvalidInput, before anything is sent
    _connect.py    the HTTP connection, the ABI-derived interface, keys, ether transfers
    _sender.py     build / sign / send / wait, the local nonce, fees, nonce retry
    _translate.py  every backend's failure -> contracts.errors (`Boundary`)
    events.py      the one event decoder and the raw-log fast path of queries

Functions are encoded and views decoded by web3's Contract API over the committed ABI.

    ledger = AuditLedger.deploy("http://127.0.0.1:8545", admin_key)
    ledger.register_node(address, peer_id, sample_cap=320, epsilon_budget=8.0)
    node = AuditLedger(rpc_url, ledger.address, node_key)
    node.record_contribution(delta_hash, base_hash, round=3, sample_count=120,
                             data_root=root, epsilon_spent=0.42)
    node.contributions(node=node.account)
    node.node_info(node.account).epsilon_remaining

Event queries never read below `deployment_block` (given by network.json, or known
after `deploy`): on a long public or consortium chain, block 0 is millions of blocks
before the contract existed. Their ranges are paged, narrowed when the server refuses.

Privacy budget: each node has a lifetime epsilon budget (set by the admin; default
DEFAULT_EPSILON_BUDGET) and the contract sums the epsilon of its records; a record that
would go over the budget is refused with `PrivacyBudgetExceeded`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract

from contracts import _args
from contracts._args import (
    DEFAULT_EPSILON_BUDGET,
    EPSILON_SCALE,
    epsilon_budget_to_micros,
    epsilon_to_micros,
    micros_to_epsilon,
)
from contracts._connect import (
    account_address,
    hex_str,
    http_web3,
    interface,
    new_private_key,
    probe_chain,
    send_ether,
)
from contracts._sender import TransactionSender, wait_for_receipt, wait_for_receipts
from contracts._translate import Boundary
from contracts.errors import InvalidInput, LedgerError, TransactionFailed
from contracts.events import LogPaging
from contracts.queries import EventQueries
from contracts.records import (
    BlockRef,
    ContributionRef,
    NewContribution,
    NodeInfo,
    TxResult,
)

__all__ = [
    "AuditLedger",
    "DEFAULT_EPSILON_BUDGET",
    "EPSILON_SCALE",
    "account_address",
    "epsilon_budget_to_micros",
    "epsilon_to_micros",
    "micros_to_epsilon",
    "new_private_key",
    "probe_chain",
    "send_ether",
]

log = logging.getLogger(__name__)

RECEIPT_TIMEOUT = 60.0
"""Seconds a sent transaction may take to be mined before the wait gives up."""


class AuditLedger(EventQueries):
    """A handle on one deployed AuditLedger contract, optionally with a sending key."""

    def __init__(
        self,
        rpc_url: str,
        address: str,
        private_key: str | bytes | None = None,
        *,
        timeout: float = 10.0,
        log_chunk_blocks: int = 50_000,
        deployment_block: int = 0,
    ) -> None:
        w3 = http_web3(_args.rpc_url(rpc_url), timeout)
        contract = _args.address(address, "contract address")
        signer = _args.account(private_key) if private_key is not None else None
        self._setup(w3, contract, signer, None, log_chunk_blocks, rpc_url, deployment_block)

    @classmethod
    def from_web3(
        cls,
        w3: Web3,
        address: str,
        private_key: str | bytes | None = None,
        *,
        log_chunk_blocks: int = 50_000,
        deployment_block: int = 0,
    ) -> AuditLedger:
        """Use an existing Web3 (e.g. eth-tester in-process) instead of an RPC URL."""
        self = cls.__new__(cls)
        contract = _args.address(address, "contract address")
        signer = _args.account(private_key) if private_key is not None else None
        self._setup(w3, contract, signer, None, log_chunk_blocks, None, deployment_block)
        return self

    @classmethod
    def deploy(cls, rpc_url: str, admin_key: str | bytes, *, timeout: float = 10.0) -> AuditLedger:
        """Deploy a new AuditLedger whose admin is `admin_key`'s address."""
        return cls._deploy(http_web3(_args.rpc_url(rpc_url), timeout), admin_key, rpc_url)

    @classmethod
    def deploy_with_web3(cls, w3: Web3, admin_key: str | bytes) -> AuditLedger:
        """`deploy` on an existing Web3 (eth-tester in-process)."""
        return cls._deploy(w3, admin_key, None)

    @classmethod
    def _deploy(cls, w3: Web3, admin_key: str | bytes, rpc_url: str | None) -> AuditLedger:
        signer = _args.account(admin_key)
        boundary = Boundary(interface().errors, rpc_url)
        sender = TransactionSender(w3, signer, boundary)
        creation = w3.eth.contract(abi=interface().abi, bytecode=interface().bytecode).constructor()
        tx_hash = sender.send(bytes.fromhex(creation.data_in_transaction[2:]), to=None)
        receipt = wait_for_receipt(w3, boundary, tx_hash, RECEIPT_TIMEOUT)
        created = receipt.get("contractAddress")
        if not created:
            raise TransactionFailed(f"deployment {tx_hash} created no contract")
        self = cls.__new__(cls)
        self._setup(w3, _args.address(created), signer, sender, 50_000, rpc_url, int(receipt["blockNumber"]))
        self.deployment = self._result(receipt)
        log.info("deployed AuditLedger at %s (gas %d)", self._address, self.deployment.gas_used)
        return self

    def _setup(
        self,
        w3: Web3,
        address: str,
        signer: LocalAccount | None,
        sender: TransactionSender | None,
        log_chunk_blocks: int,
        rpc_url: str | None,
        deployment_block: int,
    ) -> None:
        parts = interface()
        self._w3 = w3
        self._rpc_url = rpc_url
        self._address = address
        self._boundary = Boundary(parts.errors, rpc_url, address)
        self._rpc = self._boundary.run
        self._contract: Contract = w3.eth.contract(address=address, abi=parts.abi)  # type: ignore[arg-type]
        self._events = parts.events
        if sender is None and signer is not None:
            sender = TransactionSender(w3, signer, self._boundary)
        self._sender = sender
        self._chain_id: int | None = None
        self._paging = LogPaging(max(1, log_chunk_blocks))
        self._deployment_block = _args.uint(deployment_block, _args.UINT64_MAX, "deployment_block")
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
        return self._sender.address if self._sender is not None else None

    @property
    def deployment_block(self) -> int:
        """The block the contract was deployed in: no event query reads below it."""
        return self._deployment_block

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

    def block(self, number: int | str = "latest") -> BlockRef:
        """A block's number, hash and timestamp ("latest" or a number)."""
        which = number if isinstance(number, str) else _args.uint(number, _args.UINT64_MAX, "block")
        raw = self._rpc(lambda: self._w3.eth.get_block(which))  # type: ignore[arg-type]
        return BlockRef(number=int(raw["number"]), hash=hex_str(raw["hash"]), timestamp=int(raw["timestamp"]))

    def has_code(self) -> bool:
        """True when there is contract code at `address` (False after a chain reset)."""
        return len(self._rpc(lambda: bytes(self._w3.eth.get_code(self._address)))) > 0

    def balance(self, address: str | None = None) -> int:
        """Balance in wei of `address` (default: this handle's account)."""
        target = _args.address(address) if address is not None else self._require_sender().address
        return self._rpc(lambda: int(self._w3.eth.get_balance(target)))  # type: ignore[arg-type]

    def contribution_cost(self) -> int:
        """Wei this handle's account must hold to send its next contribution (gas
        limit x max fee per gas, as sent; 0 on a chain whose gas price is 0). Raises
        the contract's error if the account could not record (e.g. NotRegistered), and
        InsufficientFunds where the chain refuses even to estimate for an account that
        cannot pay (eth-tester does)."""
        sender = self._require_sender()
        info = self.node_info(sender.address)
        probe = keccak(b"medgossip contribution cost probe" + secrets.token_bytes(16))
        args = (probe, probe, (info.last_round + 1) if info else 1, 1, probe, 0, _args.UINT64_MAX)
        data = self._contract.encode_abi("recordContribution", args=list(args))
        return sender.upfront_cost(bytes.fromhex(data[2:]), to=self._address)

    # -------------------------------------------------------------------- admin

    def register_node(
        self,
        address: str,
        peer_id: bytes,
        sample_cap: int,
        epsilon_budget: float = DEFAULT_EPSILON_BUDGET,
    ) -> TxResult:
        """Register a node with the most samples one of its contributions may declare
        and the most epsilon all its contributions may spend (admin only; rounded to
        micro-epsilon; 0: only records without DP). Emits NodeRegistered, SampleCapSet,
        then PrivacyBudgetSet (`TxResult.events`)."""
        node = _args.address(address, "node address")
        args = (node, _args.peer_id(peer_id), _args.sample_cap(sample_cap),
                epsilon_budget_to_micros(epsilon_budget))
        return self._transact("registerNode", args)

    def set_sample_cap(self, address: str, sample_cap: int) -> TxResult:
        """Change an active node's sample cap (admin only). Emits SampleCapSet."""
        node = _args.address(address, "node address")
        return self._transact("setSampleCap", (node, _args.sample_cap(sample_cap)))

    def set_privacy_budget(self, address: str, epsilon_budget: float) -> TxResult:
        """Change an active node's lifetime epsilon budget (admin only). It may be set
        below what the node spent: that stops its further DP records. Emits
        PrivacyBudgetSet."""
        node = _args.address(address, "node address")
        return self._transact("setPrivacyBudget", (node, epsilon_budget_to_micros(epsilon_budget)))

    def revoke_node(self, address: str) -> TxResult:
        """Revoke a node (admin only). Emits NodeRevoked."""
        return self._transact("revokeNode", (_args.address(address, "node address"),))

    def set_genesis_model(self, model_hash: bytes) -> TxResult:
        """Fix the genesis model hash, once (admin only). Emits GenesisModelSet."""
        return self._transact("setGenesisModel", (_args.nonzero_hash32(model_hash, "model_hash"),))

    # --------------------------------------------------------------------- node

    def record_contribution(
        self,
        delta_hash: bytes,
        base_model_hash: bytes,
        round: int,
        sample_count: int,
        data_root: bytes,
        epsilon_spent: float,
        withdrawals_seen_at: int | None = None,
    ) -> TxResult:
        """Record a contribution of this handle's node and wait for it to be mined.

        The contract takes one contribution per round, rounds strictly increasing per
        node (StaleRound), with `sample_count` at most the node's cap
        (SampleCountOverCap), `epsilon_spent` (this round's, rounded to
        micro-epsilon) within what is left of the node's budget (PrivacyBudgetExceeded),
        and no consent withdrawal mined after block `withdrawals_seen_at`, up to which
        the node checked the round's subjects (WithdrawalNotSeen). None claims every
        withdrawal seen: for callers that use no subjects (tests, benchmarks).
        """
        return self.wait_for(
            self.submit_contribution(
                delta_hash, base_model_hash, round, sample_count, data_root, epsilon_spent,
                withdrawals_seen_at=withdrawals_seen_at,
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
        withdrawals_seen_at: int | None = None,
        gas: int | None = None,
    ) -> str:
        """Send a contribution without waiting; returns the tx hash (see `wait_for`).

        With `gas` given, gas estimation (and its early revert check) is skipped:
        a reverted transaction then surfaces in `wait_for`.
        """
        record = NewContribution(delta_hash, base_model_hash, round, sample_count, data_root, epsilon_spent)
        return self._require_sender().send(self._contribution_data(record, withdrawals_seen_at), to=self._address, gas=gas)

    def record_contributions(
        self, records: Sequence[NewContribution], *, withdrawals_seen_at: int | None = None
    ) -> list[TxResult | LedgerError]:
        """Record several contributions of this node as one pipeline, in order: the
        transactions go out together with consecutive nonces (one JSON-RPC batch over
        HTTP), then their receipts are read together once the last is mined, so a slow
        link to the chain costs a few round trips a batch, not several a record. The
        first is estimated (it reverts early with the contract's reason); the others
        reuse its gas limit (the same call on the same slots), so one of them that
        reverts fails at its receipt, with its reason.

        One result per record, in order: its TxResult, or the error it raised. After
        the first record the chain would not take, the others are not sent (their
        error says so).
        """
        sender = self._require_sender()
        datas: list[bytes] = []
        unrecordable: list[LedgerError] = []
        for record in records:
            try:
                datas.append(self._contribution_data(record, withdrawals_seen_at))
            except LedgerError as exc:  # an argument no chain takes: the records before it go
                unrecordable.append(exc)
                break
        if not datas:
            return list(unrecordable)
        try:
            gas = sender.gas_limit(datas[0], to=self._address)
        except LedgerError as exc:  # the first would revert: nothing is sent
            return [exc]
        answers = sender.send_all(datas, to=self._address, gas=gas)
        sent = [answer for answer in answers if isinstance(answer, str)]
        receipts = iter(wait_for_receipts(self._w3, self._boundary, sent, RECEIPT_TIMEOUT))
        results: list[TxResult | LedgerError] = []
        for answer in answers:
            outcome = next(receipts) if isinstance(answer, str) else answer
            results.append(outcome if isinstance(outcome, LedgerError) else self._result(outcome))
        return results + unrecordable

    def _contribution_data(self, record: NewContribution, withdrawals_seen_at: int | None) -> bytes:
        """recordContribution's calldata, every argument checked."""
        args = (
            _args.nonzero_hash32(record.delta_hash, "delta_hash"),
            _args.hash32(record.base_model_hash, "base_model_hash"),
            _args.uint(record.round, _args.UINT64_MAX, "round"),
            _args.uint(record.sample_count, _args.UINT32_MAX, "sample_count"),
            _args.hash32(record.data_root, "data_root"),
            epsilon_to_micros(record.epsilon_spent),
            _args.UINT64_MAX if withdrawals_seen_at is None
            else _args.uint(withdrawals_seen_at, _args.UINT64_MAX, "withdrawals_seen_at"),
        )
        return bytes.fromhex(self._contract.encode_abi("recordContribution", args=list(args))[2:])

    def withdraw_consent(self, subject: bytes) -> TxResult:
        """Withdraw a subject's consent as its custodian node."""
        return self._transact("withdrawConsent", (_args.nonzero_hash32(subject, "subject commitment"),))

    def withdraw_consent_with_token(self, token: bytes) -> TxResult:
        """Withdraw consent by revealing the subject's 32-byte token (any sender)."""
        return self._transact("withdrawConsentWithToken", (_args.nonzero_hash32(token, "consent token"),))

    # -------------------------------------------------------------------- views

    def admin(self) -> str:
        """The consortium admin address."""
        return str(self._view("admin"))

    def genesis_model(self) -> bytes | None:
        """The genesis model hash, or None when not set."""
        value = bytes(self._view("genesisModel"))
        return None if value == _args.ZERO32 else value

    def contribution(self, delta_hash: bytes) -> ContributionRef | None:
        """Who recorded `delta_hash`, in which round, with how many samples (one call)."""
        author, round_, samples = self._view("contribution", _args.hash32(delta_hash, "delta_hash"))
        if int(author, 16) == 0:
            return None
        return ContributionRef(str(author), int(round_), int(samples))

    def is_withdrawn(self, subject: bytes) -> bool:
        """Whether the subject's consent is withdrawn by token (binding every node)."""
        return bool(self._view("isWithdrawn", _args.hash32(subject, "subject commitment")))

    def is_withdrawn_for(self, subject: bytes, node: str) -> bool:
        """Whether a withdrawal binds `node`: by token, or by `node` itself as custodian."""
        return bool(self._view(
            "isWithdrawnFor", _args.hash32(subject, "subject commitment"), _args.address(node, "node address")
        ))

    def node_info(self, address: str) -> NodeInfo | None:
        """The node registered at `address` (active or revoked), or None if never."""
        node = _args.address(address, "node address")
        active, peer_id, cap, last_round, revoked_at, budget, spent = self._view("nodeInfo", node)
        if not peer_id:
            return None
        return NodeInfo(
            address=node, peer_id=bytes(peer_id), active=bool(active), sample_cap=int(cap),
            last_round=int(last_round), revoked_at_block=int(revoked_at) or None,
            epsilon_budget=micros_to_epsilon(int(budget)), epsilon_spent=micros_to_epsilon(int(spent)),
            epsilon_budget_micros=int(budget), epsilon_spent_micros=int(spent),
        )

    def is_active_node(self, address: str) -> bool:
        """True when `address` is a registered, non-revoked node."""
        info = self.node_info(address)
        return info is not None and info.active

    # ------------------------------------------------------------- transactions

    def wait_for(self, tx_hash: str, timeout: float = RECEIPT_TIMEOUT) -> TxResult:
        """Wait until `tx_hash` is mined; raise the project error if it reverted."""
        return self._result(wait_for_receipt(self._w3, self._boundary, tx_hash, timeout))

    # ---------------------------------------------------------------- internals

    def _transact(self, function: str, args: Sequence[object]) -> TxResult:
        """Send `function(*args)` (arguments already checked) and wait for it."""
        return self.wait_for(self._submit(function, args, None))

    def _submit(self, function: str, args: Sequence[object], gas: int | None) -> str:
        data = self._contract.encode_abi(function, args=list(args))
        return self._require_sender().send(bytes.fromhex(data[2:]), to=self._address, gas=gas)

    def _require_sender(self) -> TransactionSender:
        if self._sender is None:
            raise InvalidInput("this ledger handle has no private key; pass one to send transactions")
        return self._sender

    def _view(self, function: str, *args: object) -> Any:
        """Call a view through web3's Contract API (no code -> ContractNotFound)."""
        return self._rpc(lambda: self._contract.functions[function](*args).call())

    def _result(self, receipt: Any) -> TxResult:
        created = receipt.get("contractAddress")
        events = tuple(self._events.every(receipt["logs"], self._address))
        return TxResult(
            tx_hash=hex_str(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            event=events[0] if events else None,
            contract_address=_args.address(created) if created else None,
            events=events,
        )
