"""`NormBook`: each recorded delta's norm reference, the same on every peer.

An incoming update is clipped to `norm_bound` x its reference norm and refused over
`norm_refuse` x it (`Learner.merge`). The reference must not depend on the peer that
judges (DESIGN.md, "Trust model": every decision about a delta is a function of the
chain and of the payloads' bytes), or peers clip and refuse differently and their
models drift apart. A reference over our own recent updates did exactly that: in the
real-process Byzantine test, peers refused different x3 and x10 updates.

So the reference of the delta recorded at chain position p, by author a, is the median
L2 norm of the WINDOW records nearest before p by authors other than a (the norm of a
payload is a property of its bytes; our own records count like anyone's). A record with
no other author's record before it (the first of a network) takes the first one after
it instead. The window is fixed by the chain order alone, so every peer, and every late
joiner, computes the same reference once it holds those payloads; the norms of past
records stay comparable with theirs because they are judged against their own era.

Records in a window that can never have a norm (refused before one was known: an
undecodable payload, or one whose header names another author or round) are passed over
by everyone alike; the refusals are the peer's durable `refused` map, so a restart
keeps them. A payload nobody serves (withheld) is
passed over once it has been on chain WITHHELD_AFTER seconds without arriving: the only
case where peers may differ, and only under an attack the trust model names.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass

WINDOW = 6
"""other authors' records a reference is the median of (1 Byzantine author of 5 holds at
most a minority of any window of 6 records of the others)."""
WITHHELD_AFTER = 60.0
"""seconds a record may sit on chain without its payload before windows pass over it."""


@dataclass(frozen=True)
class ChainRecord:
    """A delta hash (hex key) and its author, in chain order."""

    key: str
    author: str


class NormBook:
    """Chain order, payload norms, and the reference norm of each record."""

    def __init__(
        self, norms: MutableMapping[str, float], refused: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic, window: int = WINDOW,
    ) -> None:
        self.norms = norms
        """key -> L2 norm of its decoded payload (durable: NodeState.norms)."""
        self.refused: Mapping[str, str] = {} if refused is None else refused
        """key -> why the peer refused it for good (durable: NodeState.refused)."""
        self.window = window
        self._clock = clock
        self._order: list[ChainRecord] = []
        self._position: dict[str, int] = {}
        self._seen_at: dict[str, float] = {}

    def extend(self, records: Iterable[ChainRecord]) -> bool:
        """Append records in chain order (duplicates ignored); True if any was new."""
        added = False
        for record in records:
            if record.key not in self._position:
                self._position[record.key] = len(self._order)
                self._order.append(record)
                self._seen_at[record.key] = self._clock()
                added = True
        return added

    def learn(self, key: str, norm: float) -> None:
        self.norms[key] = norm

    def missing(self) -> list[ChainRecord]:
        """Records on chain whose norm is not known, and that are not refused."""
        return [r for r in self._order if r.key not in self.norms and r.key not in self.refused]

    def reference(self, key: str) -> float | None:
        """The median norm of the record's window; None while it cannot be decided yet
        (the record, a window member's norm, or any other author's record not known
        yet); 0.0 (no bound) when every window member was passed over."""
        index = self._position.get(key)
        if index is None:
            return None
        now = self._clock()
        norms: list[float] = []
        seen_any = False
        for record in self._neighbours(index, self._order[index].author):
            seen_any = True
            if record.key in self.norms:
                norms.append(self.norms[record.key])
                if len(norms) == self.window:
                    break
            elif record.key not in self.refused and now - self._seen_at[record.key] < WITHHELD_AFTER:
                return None  # its payload may still come: wait, as every peer does
        if not seen_any:
            return None  # no other author has recorded yet: the first who does decides
        return statistics.median(norms) if norms else 0.0

    def _neighbours(self, index: int, author: str) -> Iterator[ChainRecord]:
        """Other authors' records before `index`, nearest first (walked lazily: a window
        needs only a few); if there is none, the first one after it."""
        before = False
        for i in range(index - 1, -1, -1):
            if self._order[i].author != author:
                before = True
                yield self._order[i]
        if not before:
            after = next((r for r in self._order[index + 1:] if r.author != author), None)
            if after is not None:
                yield after
