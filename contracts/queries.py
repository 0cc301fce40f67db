"""The binding's event queries (a part of `AuditLedger`): the contract's events read
with paged eth_getLogs from the deployment block, filtered on their indexed fields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from web3 import Web3

from contracts import _args
from contracts.events import EventDecoder, LogPaging, iter_logs, topic_address, topic_bytes32, topic_uint
from contracts.records import (
    ConsentWithdrawn,
    ContributionRecorded,
    LedgerEvent,
    NodeInfo,
    NodeRegistered,
    PrivacyBudgetSet,
)


class EventQueries:
    """Mixed into `AuditLedger`, which sets these attributes and methods."""

    _w3: Web3
    _rpc: Callable[..., Any]
    _address: str
    _deployment_block: int
    _paging: LogPaging
    _events: EventDecoder

    if TYPE_CHECKING:

        def block_number(self) -> int: ...

        def node_info(self, address: str) -> NodeInfo | None: ...

    def contributions(
        self,
        node: str | None = None,
        round: int | None = None,
        delta_hash: bytes | None = None,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[ContributionRecorded]:
        """ContributionRecorded events, filtered on the indexed fields, oldest first."""
        topics = [
            self._events.topic(ContributionRecorded),
            None if delta_hash is None else topic_bytes32(_args.hash32(delta_hash, "delta_hash")),
            None if node is None else topic_address(_args.address(node, "node address")),
            None if round is None else topic_uint(_args.uint(round, _args.UINT64_MAX, "round")),
        ]
        return self._events.decode_as(ContributionRecorded, self._logs(topics, from_block, to_block))

    def withdrawals(
        self,
        subject: bytes | None = None,
        from_block: int = 0,
        to_block: int | None = None,
        by: str | None = None,
    ) -> list[ConsentWithdrawn]:
        """ConsentWithdrawn events, filtered by subject / sender, oldest first."""
        topics = [
            self._events.topic(ConsentWithdrawn),
            None if subject is None else topic_bytes32(_args.hash32(subject, "subject commitment")),
            None if by is None else topic_address(_args.address(by, "sender address")),
        ]
        return self._events.decode_as(ConsentWithdrawn, self._logs(topics, from_block, to_block))

    def node_registrations(self, from_block: int = 0, to_block: int | None = None) -> list[NodeRegistered]:
        """NodeRegistered events, oldest first (current status: `node_info`)."""
        topics: list[str | None] = [self._events.topic(NodeRegistered)]
        return self._events.decode_as(NodeRegistered, self._logs(topics, from_block, to_block))

    def budget_changes(
        self, node: str | None = None, from_block: int = 0, to_block: int | None = None
    ) -> list[PrivacyBudgetSet]:
        """PrivacyBudgetSet events (at registration and every change), filtered by
        node, oldest first (current budget and spent: `node_info`)."""
        topics = [
            self._events.topic(PrivacyBudgetSet),
            None if node is None else topic_address(_args.address(node, "node address")),
        ]
        return self._events.decode_as(PrivacyBudgetSet, self._logs(topics, from_block, to_block))

    def events(self, from_block: int = 0, to_block: int | None = None) -> list[LedgerEvent]:
        """Every event of the contract in the range, of every kind, in chain order (one
        paged log query: what an indexer reads)."""
        return list(self._events.every(self._logs([], from_block, to_block), self._address))

    def registered_nodes(self) -> list[NodeInfo]:
        """Every node ever registered, with its current status, sample cap, last
        round, revocation block, privacy budget and epsilon spent."""
        infos = (self.node_info(reg.node) for reg in self.node_registrations())
        return [info for info in infos if info is not None]

    def _logs(self, topics: list[str | None], from_block: int, to_block: int | None) -> Iterator[Any]:
        start = max(self._deployment_block, _args.uint(from_block, _args.UINT64_MAX, "from_block"))
        end = self.block_number() if to_block is None else _args.uint(to_block, _args.UINT64_MAX, "to_block")
        return iter_logs(self._w3, self._rpc, self._address, topics, start, end, self._paging)

