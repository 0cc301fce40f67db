"""`PrivacyBudget`: what the peer knows of its privacy budget, and the training gate.

The admin sets each node's lifetime epsilon budget on chain, and the contract refuses a
record that would take the node's recorded total over it. The peer does not wait for
that refusal: before each round it asks its accountant what total the round would bring
(`LocalTrainer.epsilon_after_round`, without taking the steps) and trains only if the
chain would take the record. A peer whose budget is spent goes on merging its peers'
deltas and serving payloads; its status says BUDGET_SPENT. If the admin raises the
budget, it trains again.

What the peer records telescopes: each record carries the increase of the accountant's
total (rounded once to micro-epsilon) over what the chain has summed so far, so the
chain's total is the accountant's, exactly, also after a restart or a refused record.

The recorder reads the budget on chain (every chain_poll, on a worker thread); a chain
error keeps the last known figures. Before the first read the budget is unknown and the
peer trains: nothing it trains is released unless the chain records it within budget.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import trio

from contracts.ledger import EPSILON_SCALE, epsilon_to_micros
from node.peer.status import BUDGET_SPENT, PrivacyBudgetStatus

if TYPE_CHECKING:
    from contracts.records import NodeInfo
    from node.trainer import LocalTrainer

log = logging.getLogger("medgossip.peer")


def micros_to_record(total: float, spent_micros: int) -> int:
    """Micro-epsilon a record must carry so that the chain's sum, `spent_micros` now,
    becomes the accountant's lifetime `total` rounded once to micro-epsilon (0 if the
    chain has it already, e.g. the same record mined before a crash)."""
    return max(0, epsilon_to_micros(total) - spent_micros)


def within_budget(info: NodeInfo, total: float) -> bool:
    """Would the contract take a record bringing the node's lifetime epsilon to `total`?
    (The contract's rule and rounding, `NodeInfo.allows_epsilon`.)"""
    if not math.isfinite(total):
        return False
    return info.allows_epsilon(micros_to_record(total, info.epsilon_spent_micros) / EPSILON_SCALE)


class PrivacyBudget:
    """The last known budget on chain (`seen`), and the gate before each round."""

    def __init__(self, poll: float) -> None:
        self.poll = poll
        self.info: NodeInfo | None = None
        self.next_total: float | None = None
        self.spent = False
        self._read = trio.Event()

    def seen(self, info: NodeInfo | None) -> None:
        """A read of this node on chain finished (trio thread); None: it failed, keep
        what is known."""
        if info is not None:
            self.info = info
        self._read.set()
        self._read = trio.Event()

    async def _next_read(self) -> None:
        with trio.move_on_after(max(2 * self.poll, 1.0)):
            await self._read.wait()

    async def allows_round(self, trainer: LocalTrainer, steps: int) -> bool:
        """May the peer train `steps` more steps now? Always without DP.

        With DP: the accountant's total after the round, computed on a worker thread,
        must be within the budget as last read. A refusal first waits for the next read
        (about one chain_poll): the admin may have raised the budget, and a peer that
        only merges then paces its rounds by the chain poll rather than spin.
        """
        if trainer.accountant is None:
            return True
        total = await trio.to_thread.run_sync(trainer.epsilon_after_round, steps)
        self.next_total = total
        if self.info is None or not within_budget(self.info, total):
            await self._next_read()
        allowed = self.info is None or within_budget(self.info, total)
        if allowed == self.spent and self.info is not None:  # the state changes: say so once
            info = self.info
            if allowed:
                log.info("privacy budget %.4f on chain allows the next round (epsilon %.4f): training again",
                         info.epsilon_budget, total)
            else:
                log.warning(
                    "privacy budget spent: the next round would bring epsilon to %.4f, over the budget of "
                    "%.4f on chain (%.4f recorded); not training, still merging peers' deltas and serving payloads",
                    total, info.epsilon_budget, info.epsilon_spent,
                )
        self.spent = not allowed
        return allowed

    def status(self) -> PrivacyBudgetStatus:
        info = self.info
        state = "unknown" if info is None else (BUDGET_SPENT if self.spent else "ok")
        return PrivacyBudgetStatus(
            state=state,
            budget=None if info is None else info.epsilon_budget,
            recorded=None if info is None else info.epsilon_spent,
            next_round_total=self.next_total,
        )
