"""Bounded in-memory store of the payloads this peer serves (LRU by total bytes)."""

from __future__ import annotations

from collections import OrderedDict

from gossip.errors import PayloadOverLimit

__all__ = ["PayloadStore"]


class PayloadStore:
    """Payloads by keccak256 hash; evicts least recently used beyond ``max_bytes``."""

    def __init__(self, max_bytes: int, max_item: int) -> None:
        self._max_bytes = max_bytes
        self._max_item = max_item
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._total = 0

    def put(self, delta_hash: bytes, payload: bytes) -> None:
        if len(payload) > self._max_item or len(payload) > self._max_bytes:
            raise PayloadOverLimit(
                f"payload of {len(payload)} bytes over the limit "
                f"({min(self._max_item, self._max_bytes)})"
            )
        old = self._items.pop(delta_hash, None)
        if old is not None:
            self._total -= len(old)
        self._items[delta_hash] = payload
        self._total += len(payload)
        while self._total > self._max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._total -= len(evicted)

    def get(self, delta_hash: bytes) -> bytes | None:
        payload = self._items.get(delta_hash)
        if payload is not None:
            self._items.move_to_end(delta_hash)
        return payload

    def __contains__(self, delta_hash: object) -> bool:
        return delta_hash in self._items

    def discard(self, delta_hash: bytes) -> None:
        payload = self._items.pop(delta_hash, None)
        if payload is not None:
            self._total -= len(payload)

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._items)
