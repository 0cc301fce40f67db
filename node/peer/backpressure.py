"""`Backpressure`: the peer trains only while few of its contributions wait for the chain.

Each trained round queues a contribution, which the recorder records on chain and only
then announces. On a slow link recording falls behind training (about 1 transaction/s
at +100 ms and 1% loss, issue 14, while the unrecorded queue grew from 0 to 63): the
peers hear of those rounds late, and nothing bounded the backlog. So with
`max_unrecorded` contributions queued the peer stops training until the queue is below
the bound again. Meanwhile it merges its peers' deltas and serves payloads: the round
loop takes the same merge-only path as when the privacy budget is spent, each such round
paced by one chain_poll. 0 turns the bound off.
"""

from __future__ import annotations

import logging

import trio

from node.peer.durable import Durable
from node.peer.status import PAUSED

log = logging.getLogger("medgossip.peer")


class Backpressure:
    """The training gate on the unrecorded queue (the journal's "queued" entries)."""

    def __init__(self, durable: Durable, bound: int, poll: float) -> None:
        self.durable = durable
        self.bound = bound
        self.poll = poll
        self.paused = False

    def waiting(self) -> int:
        """Contributions trained and not recorded yet."""
        return len(self.durable.state.queued())

    async def allows_round(self) -> bool:
        """May the peer train a round now? When the queue is full, first give the
        recorder one chain_poll to drain it (a paused peer paces its merge-only rounds
        by the chain poll rather than spin)."""
        if not self.bound:
            return True
        if self.waiting() >= self.bound:
            await trio.sleep(self.poll)
        allowed = self.waiting() < self.bound
        if self.paused == allowed:  # the state changes: say so once
            self.paused = not allowed
            if allowed:
                log.info("unrecorded contributions down to %d (max_unrecorded %d): training again",
                         self.waiting(), self.bound)
            else:
                log.warning("%s; still merging peers' deltas and serving payloads", self.state())
        return allowed

    def state(self) -> str:
        """"ok", or "paused: N contributions waiting to be recorded (max_unrecorded M)"."""
        if not self.paused:
            return "ok"
        return f"{PAUSED}: {self.waiting()} contributions waiting to be recorded (max_unrecorded {self.bound})"
