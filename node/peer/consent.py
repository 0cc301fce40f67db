"""`ConsentWatcher`: applies consent withdrawals recorded on chain.

Polls `ConsentWithdrawn` events every `chain_poll`; a withdrawn subject's images leave
the training set (and the held-out split) before the next local step. The block up to
which withdrawals are applied is kept in node.json, so a restart reads only what is new.
"""

from __future__ import annotations

import logging

import trio

from contracts.errors import ChainUnavailable
from contracts.ledger import AuditLedger
from node.peer.durable import Durable
from node.peer.status import Counters
from node.trainer import LocalTrainer

log = logging.getLogger("medgossip.peer")


class ConsentWatcher:
    def __init__(
        self, durable: Durable, ledger: AuditLedger, trainer: LocalTrainer, counters: Counters, poll: float
    ) -> None:
        self.durable = durable
        self.ledger = ledger
        self.trainer = trainer
        self.counters = counters
        self.poll = poll
        self.withdrawn: set[bytes] = {bytes.fromhex(h[2:]) for h in durable.state.withdrawn}

    async def run(self) -> None:
        while True:
            try:
                await self.apply_new()
            except ChainUnavailable:
                pass
            await trio.sleep(self.poll)

    async def apply_new(self) -> None:
        head, subjects = await trio.to_thread.run_sync(self._read, self.durable.state.withdrawals_block)
        if head is None:
            return
        fresh = [s for s in subjects if s not in self.withdrawn]
        if fresh:
            local = self.trainer.exclude(fresh)
            self.withdrawn.update(fresh)
            self.counters.withdrawals_applied += len(fresh)
            self.counters.excluded_images += local
            log.info(
                "consent withdrawal applied: %d subject(s), %d local image(s) excluded before the next step",
                len(fresh), local,
            )
        state = self.durable.state
        state.withdrawn = ["0x" + s.hex() for s in sorted(self.withdrawn)]
        state.withdrawals_block = head + 1
        await self.durable.save()

    def _read(self, from_block: int) -> tuple[int | None, list[bytes]]:
        """(head, subjects withdrawn in blocks from_block..head); (None, []) if nothing new."""
        head = self.ledger.block_number()
        if head < from_block:
            return None, []
        return head, [e.subject for e in self.ledger.withdrawals(from_block=from_block, to_block=head)]
