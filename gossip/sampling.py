"""Pick random live peers for fan-out, leaving out self and recent misbehavers."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable

__all__ = ["PeerSampler"]


class PeerSampler:
    """Remembers who misbehaved (lied, failed, timed out) and for how long to avoid them."""

    def __init__(
        self,
        self_id: str,
        penalty_seconds: float,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._self_id = self_id
        self._penalty = penalty_seconds
        self._rng = rng or random.SystemRandom()
        self._clock = clock
        self._until: dict[str, float] = {}

    def mark_misbehaving(self, peer_id: str, seconds: float | None = None) -> None:
        self._until[peer_id] = self._clock() + (self._penalty if seconds is None else seconds)

    def is_misbehaving(self, peer_id: str) -> bool:
        until = self._until.get(peer_id)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[peer_id]
            return False
        return True

    def misbehaving(self) -> list[str]:
        return [peer for peer in list(self._until) if self.is_misbehaving(peer)]

    def sample(self, live_peers: Iterable[str], k: int) -> list[str]:
        """Up to ``k`` distinct random peers from ``live_peers`` that are eligible."""
        eligible = sorted(
            {p for p in live_peers if p != self._self_id and not self.is_misbehaving(p)}
        )
        if k <= 0 or not eligible:
            return []
        return self._rng.sample(eligible, min(k, len(eligible)))

    def shuffle(self, peers: Iterable[str], *, keep_order: bool = False) -> list[str]:
        """``peers`` in random (or the given) order, well-behaved ones first."""
        unique = list(dict.fromkeys(p for p in peers if p != self._self_id))
        if not keep_order:
            self._rng.shuffle(unique)
        return sorted(unique, key=self.is_misbehaving)
