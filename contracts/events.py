"""AuditLedger's event logs as `contracts.records`: the one decoder, used for the event
of a receipt and for queries alike, and the raw-log fast path that queries take.

`EVENT_RECORDS` maps each event to its record: a new event is one line there (plus its
record in `contracts.records`). The builder receives the event's arguments in ABI
order, then the block number and the transaction hash; `EventDecoder` derives topics,
indexed positions and argument types from the ABI.

Fast path (measured; an audit query may decode thousands of logs): over HTTP,
`eth_getLogs` is sent as a raw request and its JSON used as is, since web3's per-log
result formatting costs more than the query itself; and an event whose data holds
only static words is sliced rather than passed to eth_abi (about 10x cheaper per log).

Paging: public and consortium RPCs cap eth_getLogs ranges (or result counts) and answer
"range too large" in many wordings (`_translate.is_range_refusal`); `iter_logs` asks in
pages and halves a page the server refuses, remembering the width (`LogPaging`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import eth_abi
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import RPCEndpoint

from contracts._args import micros_to_epsilon
from contracts._translate import is_range_refusal
from contracts.errors import LogRangeRefused
from contracts.records import (
    ConsentWithdrawn,
    ContributionRecorded,
    GenesisModelSet,
    LedgerEvent,
    NodeRegistered,
    NodeRevocation,
    PrivacyBudgetSet,
    SampleCapSet,
)

__all__ = [
    "EVENT_RECORDS",
    "EventDecoder",
    "LogPaging",
    "iter_logs",
    "topic_address",
    "topic_bytes32",
    "topic_uint",
]

E = TypeVar("E")

log = logging.getLogger(__name__)


def _contribution_recorded(
    delta_hash: bytes, node: str, round_: int, base_model_hash: bytes, sample_count: int,
    data_root: bytes, epsilon_micros: int, block_number: int, tx_hash: str,
) -> ContributionRecorded:
    return ContributionRecorded(
        delta_hash, node, round_, base_model_hash, sample_count, data_root,
        micros_to_epsilon(epsilon_micros), block_number, tx_hash,
    )


def _privacy_budget_set(node: str, budget_micros: int, block_number: int, tx_hash: str) -> PrivacyBudgetSet:
    return PrivacyBudgetSet(node, micros_to_epsilon(budget_micros), budget_micros, block_number, tx_hash)


EVENT_RECORDS: Mapping[str, tuple[type[Any], Callable[..., Any]]] = {
    # Solidity event name: (record type, builder(*event args in ABI order, block, tx))
    "ContributionRecorded": (ContributionRecorded, _contribution_recorded),
    "ConsentWithdrawn": (ConsentWithdrawn, ConsentWithdrawn),
    "NodeRegistered": (NodeRegistered, NodeRegistered),
    "SampleCapSet": (SampleCapSet, SampleCapSet),
    "PrivacyBudgetSet": (PrivacyBudgetSet, _privacy_budget_set),
    "NodeRevoked": (NodeRevocation, NodeRevocation),
    "GenesisModelSet": (GenesisModelSet, GenesisModelSet),
}


# ----------------------------------------------------------------- word converters


@functools.lru_cache(maxsize=4096)
def _checksum(address_hex: str) -> str:
    return str(to_checksum_address("0x" + address_hex))


def _word_converter(abi_type: str) -> Callable[[bytes], Any] | None:
    """How one 32-byte word (a topic, or a static data slot) becomes a Python value."""
    if abi_type == "bytes32":
        return bytes
    if abi_type == "bool":
        return lambda word: word[-1] == 1
    if abi_type == "address":
        return lambda word: _checksum(word[-20:].hex())
    if abi_type.startswith("uint"):
        return lambda word: int.from_bytes(word, "big")
    if abi_type.startswith("int"):
        return lambda word: int.from_bytes(word, "big", signed=True)
    return None  # dynamic or packed: eth_abi decodes it (an indexed one is its hash)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return bytes(value)


def _as_hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def _as_int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


# ------------------------------------------------------------------------- decoder


@dataclass(frozen=True)
class _EventSpec:
    """One event's layout, derived from its ABI entry."""

    name: str
    topic: str  # 0x-hex keccak of the signature
    build: Callable[..., Any]
    indexed: tuple[Callable[[bytes], Any], ...]  # indexed args come first (see below)
    data_types: tuple[str, ...]
    data_words: tuple[Callable[[bytes], Any], ...] | None  # None: decode with eth_abi
    order: tuple[int, ...] | None  # ABI positions of (indexed + data) when not in order

    @classmethod
    def from_abi(cls, item: Mapping[str, Any], build: Callable[..., Any]) -> _EventSpec:
        inputs = list(item["inputs"])
        types = [str(arg["type"]) for arg in inputs]
        signature = f"{item['name']}({','.join(types)})"
        indexed_at = [i for i, arg in enumerate(inputs) if arg["indexed"]]
        data_at = [i for i, arg in enumerate(inputs) if not arg["indexed"]]
        words = tuple(_word_converter(types[i]) for i in data_at)
        static = all(w is not None for w in words)
        positions = tuple(indexed_at + data_at)
        return cls(
            name=str(item["name"]),
            topic="0x" + keccak(text=signature).hex(),
            build=build,
            indexed=tuple(_word_converter(types[i]) or bytes for i in indexed_at),
            data_types=tuple(types[i] for i in data_at),
            data_words=words if static else None,  # type: ignore[arg-type]
            order=None if positions == tuple(range(len(inputs))) else positions,
        )

    def decode(self, entry: Mapping[str, Any]) -> Any:
        topics = entry["topics"]
        values = [convert(_as_bytes(t)) for convert, t in zip(self.indexed, topics[1:])]
        data = _as_bytes(entry["data"])
        words = self.data_words
        if words is not None and len(data) == 32 * len(words):
            values += [convert(data[32 * i : 32 * i + 32]) for i, convert in enumerate(words)]
        else:
            decoded = eth_abi.decode(list(self.data_types), data)
            values += [
                _checksum(v[2:].lower()) if t == "address" else (bytes(v) if isinstance(v, bytes) else v)
                for t, v in zip(self.data_types, decoded)
            ]
        if self.order is not None:
            in_abi_order: list[Any] = [None] * len(values)
            for position, value in zip(self.order, values):
                in_abi_order[position] = value
            values = in_abi_order
        return self.build(*values, _as_int(entry["blockNumber"]), _as_hex(entry["transactionHash"]))


class EventDecoder:
    """Every event of `EVENT_RECORDS` found in the ABI, by topic and by record type."""

    def __init__(
        self,
        abi: Sequence[Mapping[str, Any]],
        records: Mapping[str, tuple[type[Any], Callable[..., Any]]] = EVENT_RECORDS,
    ) -> None:
        self._by_topic: dict[str, _EventSpec] = {}
        self._by_record: dict[type[Any], _EventSpec] = {}
        for item in abi:
            if item.get("type") != "event" or item["name"] not in records:
                continue
            record, build = records[item["name"]]
            spec = _EventSpec.from_abi(item, build)
            self._by_topic[spec.topic] = spec
            self._by_record[record] = spec

    def topic(self, record: type[Any]) -> str:
        """topic0 of the event that `record` stands for."""
        return self._by_record[record].topic

    def decode_as(self, record: type[E], entries: Iterable[Mapping[str, Any]]) -> list[E]:
        """Logs already filtered on `record`'s topic (a query) -> records."""
        spec = self._by_record[record]
        return [spec.decode(entry) for entry in entries]

    def first(self, logs: Iterable[Mapping[str, Any]], address: str) -> LedgerEvent | None:
        """The first of our events that `address` emitted among a receipt's logs."""
        return next(self.every(logs, address), None)

    def every(self, logs: Iterable[Mapping[str, Any]], address: str) -> Iterator[LedgerEvent]:
        """Our events that `address` emitted among a receipt's logs, in order."""
        wanted = address.lower()
        for entry in logs:
            if not entry["topics"] or _as_hex(entry["address"]).lower() != wanted:
                continue
            spec = self._by_topic.get(_as_hex(entry["topics"][0]).lower())
            if spec is not None:
                yield spec.decode(entry)


# -------------------------------------------------------------------------- queries


@dataclass
class LogPaging:
    """The widest block range one eth_getLogs asks for. Mutable on purpose: a handle
    narrows it once when its server refuses a range, then keeps the width that works."""

    blocks: int

    def narrow(self, refused: int) -> None:
        """Half of a `refused` width (at least one block), never wider than now."""
        self.blocks = max(1, min(self.blocks, refused // 2))


def iter_logs(
    w3: Web3,
    run: Callable[[Callable[[], list[Any]]], list[Any]],
    address: str,
    topics: list[str | None],
    start: int,
    end: int,
    paging: LogPaging,
) -> Iterator[Any]:
    """eth_getLogs over [start, end] in pages of `paging.blocks` blocks (RPC servers
    cap the range). A page the server refuses as too large is halved and asked again,
    down to one block (`LogRangeRefused` then). Every call goes through `run`, the
    error boundary."""
    while topics and topics[-1] is None:
        topics = topics[:-1]
    while start <= end:
        stop = min(end, start + paging.blocks - 1)
        params = {"address": address, "fromBlock": hex(start), "toBlock": hex(stop), "topics": topics}
        try:
            logs = run(lambda: _page(w3, params))
        except LogRangeRefused:
            if stop == start:
                raise
            paging.narrow(stop - start + 1)
            log.info("the chain refused eth_getLogs over %d blocks: asking for %d at a time",
                     stop - start + 1, paging.blocks)
            continue
        yield from logs
        start = stop + 1


def _page(w3: Web3, params: dict[str, Any]) -> list[Any]:
    """One page of logs; a range refusal becomes `LogRangeRefused` (the boundary lets
    our errors through), every other failure goes to the boundary as raised."""
    try:
        return _raw_logs(w3, params)
    except Exception as exc:
        if not is_range_refusal(exc):
            raise
        raise LogRangeRefused(
            f"the chain refuses eth_getLogs over blocks {int(params['fromBlock'], 16)}.."
            f"{int(params['toBlock'], 16)}: {exc}"
        ) from exc


def _raw_logs(w3: Web3, params: dict[str, Any]) -> list[Any]:
    """eth_getLogs; over HTTP the raw JSON is used as is (the fast path, see above)."""
    if not isinstance(w3.provider, Web3.HTTPProvider):
        return list(w3.eth.get_logs(params))  # type: ignore[arg-type]
    response = w3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
    if "error" in response:
        raise Web3RPCError(str(response["error"]), rpc_response=response)
    return list(response["result"])


def topic_address(address: str) -> str:
    """An indexed address as a topic filter (`address` already checksummed)."""
    return "0x" + "00" * 12 + address[2:].lower()


def topic_uint(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def topic_bytes32(value: bytes) -> str:
    return "0x" + value.hex()
