"""`ConsentWatcher`: applies the consent withdrawals this peer must obey.

Polls `ConsentWithdrawn` events every `chain_poll`. A peer obeys a withdrawal made with
the subject's token (relayed by anyone) or made by itself, as the custodian
(DESIGN.md, "Trust model"): the withdrawn subject's images leave the training set (and
the held-out split) before the next local step. A withdrawal by commitment sent by
another node is on chain but not obeyed: a node cannot withdraw another hospital's
patients. It is logged once and counted (`Counters.withdrawals_ignored`).

The block up to which withdrawals are read is kept in node.json, so a restart reads only
what is new; obeyed subjects are kept there too.
"""

from __future__ import annotations

import logging

import trio

from contracts.errors import ChainUnavailable
from contracts.ledger import AuditLedger
from contracts.records import ConsentWithdrawn
from node.peer.durable import Durable
from node.peer.status import Counters
from node.trainer import LocalTrainer

log = logging.getLogger("medgossip.peer")


def obeyed(withdrawal: ConsentWithdrawn, address: str) -> bool:
    """Does the node at `address` obey this withdrawal? Made with the token, or by itself."""
    return withdrawal.by_token or withdrawal.by.lower() == address.lower()


class ConsentWatcher:
    def __init__(
        self, durable: Durable, ledger: AuditLedger, trainer: LocalTrainer, counters: Counters, poll: float
    ) -> None:
        self.durable = durable
        self.ledger = ledger
        self.address = ledger.account or ""
        """this node (the ledger handle signs with the node's key): the custodian we obey."""
        self.trainer = trainer
        self.counters = counters
        self.poll = poll
        self.withdrawn: set[bytes] = {bytes.fromhex(h[2:]) for h in durable.state.withdrawn}
        self._lock = trio.Lock()
        """the recorder also calls apply_new, just before it records: one read at a time."""

    async def run(self) -> None:
        while True:
            try:
                await self.apply_new()
            except ChainUnavailable:
                pass
            await trio.sleep(self.poll)

    async def apply_new(self) -> None:
        """Read the withdrawals mined since the last read and obey those for us (raises
        ChainUnavailable when the chain cannot answer)."""
        async with self._lock:
            await self._apply_new()

    async def _apply_new(self) -> None:
        head, events = await trio.to_thread.run_sync(self._read, self.durable.state.withdrawals_block)
        if head is None:
            return
        for event in events:
            if not obeyed(event, self.address):
                self.counters.withdrawals_ignored += 1
                log.info(
                    "consent withdrawal of subject=%s by node %s (by commitment, tx=%s) not obeyed: only the "
                    "subject's token or this node as custodian withdraws its subjects",
                    "0x" + event.subject.hex()[:8], event.by, event.tx_hash[:10],
                )
        fresh = sorted({e.subject for e in events if obeyed(e, self.address)} - self.withdrawn)
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

    def _read(self, from_block: int) -> tuple[int | None, list[ConsentWithdrawn]]:
        """(head, withdrawals in blocks from_block..head); (None, []) if nothing new."""
        head = self.ledger.block_number()
        if head < from_block:
            return None, []
        return head, self.ledger.withdrawals(from_block=from_block, to_block=head)
