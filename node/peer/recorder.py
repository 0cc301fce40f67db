"""`Recorder`: the queue of our contributions to record on chain, then announce.

Contributions are queued in the journal (durable) when a round is trained; the
recorder records them oldest first, marks each recorded in the journal, and only then
announces it to peers. It survives every answer the chain can give, so a restart never
meets a journal entry it cannot get past:

    mined                      recorded; announced
    already ours               (recorded before a crash, not journaled yet) the same
    our hash, another author   front-run: one warning naming the front-runner; the payload
                               is re-encoded with a fresh nonce (a new hash) and recorded again
    revoked, stale round,      rejected for good: the entry says why, the status shows it,
    over the cap or budget,    the queue moves on
    unrecordable entry
    chain down, tx failed,     left queued, retried every chain_poll
    not mined in time

Just before an entry is sent, the withdrawals mined since the consent watcher's last
poll are applied; an entry whose round used a subject withdrawn since (for us: by token,
or by this node) is rejected, never recorded nor announced: every contribution recorded
after a withdrawal leaves the subject out, which `medgossip audit prove` shows and
`audit verify` checks. The round's update stays in this peer's own model only. A
withdrawal mined between this read and the record cannot slip through: the record
carries the block up to which withdrawals were read, and the contract refuses it if a
withdrawal was mined after that block (`WithdrawalNotSeen`); the recorder then reads
the withdrawals again and checks the round again.

The epsilon it records telescopes (`node.peer.budget`): the increase of the accountant's
total after the entry's round over what the chain has summed, read just before sending.
Queued entries go out as one pipeline (up to PIPELINE; `AuditLedger.record_contributions`),
each carrying the increase over the entry before it. If the chain rejects an entry in
the middle (a cap lowered meanwhile), the entries after it in that pipeline were already
sent: the chain's total then lags the accountant's by the rejected round's epsilon until
this node's next record, which carries it.
Between polls it reads this node's privacy budget on chain for the training gate
(`self.budget`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from contracts.errors import (
    ChainUnavailable,
    DuplicateContribution,
    InvalidInput,
    LedgerError,
    NodeRevoked,
    NotRegistered,
    PrivacyBudgetExceeded,
    SampleCountOverCap,
    StaleRound,
    WithdrawalNotSeen,
)
from contracts.ledger import EPSILON_SCALE
from contracts.records import NewContribution, NodeInfo, TxResult
from gossip import Announcement, GossipNetwork
from node.checkpoint import JournalEntry
from node.codec import rebind
from node.peer.budget import PrivacyBudget, micros_to_record
from node.peer.chain_view import ChainView
from node.peer.consent import ConsentWatcher
from node.peer.durable import Durable
from node.peer.status import Counters

log = logging.getLogger("medgossip.peer")

PIPELINE = 16
"""entries sent as one pipeline at most (`AuditLedger.record_contributions`)."""
MAX_UNSEEN = 3
"""times in a row a record is sent again after a withdrawal it had not seen was mined."""


@dataclass(frozen=True)
class Answer:
    """What the chain said to one recording attempt (a worker thread's return value)."""

    kind: str
    """"recorded", "front-run", "rejected", "retry", "unseen-withdrawal", "withdrawn"."""
    tx_hash: str = ""
    block: int = 0
    detail: str = ""


class Recorder:
    def __init__(
        self, durable: Durable, chain: ChainView, net: GossipNetwork, address: str, peer_id: str,
        codec: str, counters: Counters, poll: float, consent: ConsentWatcher | None = None,
    ) -> None:
        self.durable = durable
        self.consent = consent
        """applies the latest withdrawals just before each record (None: not checked)."""
        self.chain = chain
        self.net = net
        self.address = address
        self.peer_id = peer_id
        self.codec = codec
        self.counters = counters
        self.poll = poll
        self.state = "ok"
        """what the recorder is doing, for the status: "ok" or why contributions wait."""
        self.budget = PrivacyBudget(poll)
        """this node's privacy budget as last read on chain (read here, between polls)."""
        self._wakeup = trio.Event()
        self._idle = trio.Event()

    def wake(self) -> None:
        """A contribution was queued: record it now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._record_queued()
            self.budget.seen(await trio.to_thread.run_sync(self._node_info))
            if not self.durable.state.queued():
                self._idle.set()
            with trio.move_on_after(self.poll):
                await self._wakeup.wait()
            self._wakeup = trio.Event()

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until nothing is queued."""
        with trio.move_on_after(timeout):
            while self.durable.state.queued():
                self._idle = trio.Event()
                self.wake()
                await self._idle.wait()

    async def _record_queued(self) -> None:
        """Record what is queued, oldest first, PIPELINE entries at a time."""
        state = self.durable.state
        while queued := state.queued():
            answers = await self._send_checked(queued[:PIPELINE])
            for entry, answer in zip(queued, answers):
                if answer.kind == "withdrawn":
                    state.mark_rejected(entry.delta_hash, answer.detail)
                    await self.durable.save()
                    log.warning("round=%d delta=%s %s", entry.round, entry.delta_hash[:10], answer.detail)
                    continue
                if answer.kind == "retry":
                    self.state = answer.detail
                    log.warning("%s: %d contribution(s) queued", answer.detail, len(state.queued()))
                    return
                if answer.kind == "front-run":
                    log.warning(
                        "delta=%s of round=%d was recorded first by %s: re-encoding it with a fresh nonce",
                        entry.delta_hash[:10], entry.round, answer.detail,
                    )
                    new_hash = await trio.to_thread.run_sync(self._rebind, entry)
                    if new_hash is None:
                        state.mark_rejected(entry.delta_hash, "front-run, and the payload is no longer on disk")
                    else:
                        state.rebound(entry.delta_hash, new_hash, entry.nonce + 1)
                    await self.durable.save()
                    self.wake()
                    return
                if answer.kind == "rejected":
                    self.state = f"rejected: {answer.detail}"
                    state.mark_rejected(entry.delta_hash, answer.detail)
                    await self.durable.save()
                    log.error("the chain rejected round=%d delta=%s for good: %s", entry.round, entry.delta_hash[:10], answer.detail)
                    continue
                await self._recorded(entry, answer)

    async def _recorded(self, entry: JournalEntry, answer: Answer) -> None:
        """Journal a mined entry, then announce it to peers."""
        self.state = "ok"
        self.durable.state.mark_recorded(entry.delta_hash, answer.tx_hash, answer.block)
        await self.durable.save()
        self.counters.recorded += 1
        log.info("recorded round=%d delta=%s tx=%s block=%d", entry.round, entry.delta_hash[:10], answer.tx_hash[:10], answer.block)
        payload = await trio.to_thread.run_sync(self.durable.store.load_payload, entry.delta_hash)
        await self.net.announce(
            Announcement(
                peer_id=self.peer_id, round=entry.round, delta_hash=bytes.fromhex(entry.delta_hash[2:]),
                size=len(payload or b""), codec=self.codec, metadata={"samples": str(entry.sample_count)},
            )
        )

    async def _send_checked(self, entries: list[JournalEntry]) -> list[Answer]:
        """Check the entries' rounds against the latest withdrawals, then send the ones
        before the first that used a withdrawn subject (that one alone if it is first);
        again if the contract says a withdrawal was mined after the block we read up to.
        One answer per entry from the first, as far as the chain answered."""
        for _ in range(MAX_UNSEEN):
            await self._apply_withdrawals()
            batch: list[JournalEntry] = []
            for entry in entries:
                used = await trio.to_thread.run_sync(self._withdrawn_used, entry)
                if used and not batch:
                    return [Answer("withdrawn", detail=f"trained on {len(used)} subject(s) withdrawn since "
                                                       f"({', '.join(s[:10] for s in used)}): not recorded")]
                if used:
                    break
                batch.append(entry)
            seen_at = max(0, self.durable.state.withdrawals_block - 1) if self.consent is not None else None
            answers = await trio.to_thread.run_sync(self._send, batch, seen_at)
            unseen = [i for i, answer in enumerate(answers) if answer.kind == "unseen-withdrawal"]
            if not unseen:
                return answers
            log.info("round=%d: %s; checking it again", batch[unseen[0]].round, answers[unseen[0]].detail)
            if unseen[0] > 0:  # the entries before it are answered; the rest go again
                return answers[: unseen[0]]
        return [Answer("retry", detail="consent withdrawals keep arriving")]

    async def _apply_withdrawals(self) -> None:
        """Read the withdrawals mined since the consent watcher's last poll (the last
        known ones if the chain cannot answer: the send would be retried then anyway)."""
        if self.consent is None:
            return
        try:
            await self.consent.apply_new()
        except ChainUnavailable:
            pass

    def _withdrawn_used(self, entry: JournalEntry) -> list[str]:
        """The subjects of the entry's round whose withdrawal we must obey (blocking)."""
        if self.consent is None:
            return []
        audit = self.durable.store.load_audit(entry.round)
        used = set(audit.get("subjects", [])) if audit else set()
        return sorted(used & set(self.durable.state.withdrawn))

    def _send(self, entries: list[JournalEntry], seen_at: int | None) -> list[Answer]:
        """Send the entries' transactions as one pipeline (blocking) and say what the
        chain answered to each, as far as it did. `seen_at`: the block up to which the
        rounds' subjects were checked against withdrawals."""
        ledger = self.chain.ledger
        try:
            records, unrecordable = self._records(entries)
            results = ledger.record_contributions(records, withdrawals_seen_at=seen_at) if records else []
        except LedgerError as exc:  # the chain could not be read, or no key to send with
            return [self._refused(entries[0], exc)]
        if unrecordable is not None and len(results) == len(records):
            results.append(unrecordable)
        return [
            Answer("recorded", result.tx_hash, result.block_number) if isinstance(result, TxResult)
            else self._refused(entry, result)
            for entry, result in zip(entries, results)
        ]

    def _records(self, entries: list[JournalEntry]) -> tuple[list[NewContribution], InvalidInput | None]:
        """The entries as records, up to the first whose epsilon cannot be recorded (and
        why) (blocking). The epsilon each carries telescopes: its accountant total over
        what the chain will have summed once the entries before it are mined (as
        journaled for an entry without a total)."""
        info = self.chain.ledger.node_info(self.address)
        spent = info.epsilon_spent_micros if info else 0
        records: list[NewContribution] = []
        for entry in entries:
            if entry.epsilon_total is None:
                epsilon = entry.epsilon
            else:
                try:
                    micros = micros_to_record(entry.epsilon_total, spent)
                except InvalidInput as exc:
                    return records, exc
                spent += micros
                epsilon = micros / EPSILON_SCALE
            records.append(NewContribution(
                bytes.fromhex(entry.delta_hash[2:]), bytes.fromhex(entry.base_hash[2:]), entry.round,
                entry.sample_count, bytes.fromhex(entry.data_root[2:]), epsilon,
            ))
        return records, None

    def _refused(self, entry: JournalEntry, exc: LedgerError) -> Answer:
        """What a chain error for `entry`'s record means (blocking: it may look it up)."""
        try:
            raise exc
        except (DuplicateContribution, StaleRound):
            # Recorded before a crash, not yet journaled: ours if the chain says so.
            try:
                ref = self.chain.ledger.contribution(bytes.fromhex(entry.delta_hash[2:]))
            except LedgerError as lookup:
                return Answer("retry", detail=f"chain error: {lookup}")
            if ref is not None and ref.author == self.address:
                return Answer("recorded")
            if isinstance(exc, DuplicateContribution):
                return Answer("front-run", detail=ref.author if ref is not None else "another node")
            return Answer("rejected", detail=str(exc))
        except WithdrawalNotSeen:
            return Answer("unseen-withdrawal", detail=str(exc))
        except PrivacyBudgetExceeded:
            return Answer("rejected", detail=f"privacy budget spent: {exc}")
        except (NodeRevoked, NotRegistered, SampleCountOverCap):
            return Answer("rejected", detail=str(exc))
        except InvalidInput:  # e.g. an epsilon that is not finite: no retry will do
            return Answer("rejected", detail=f"unrecordable: {exc}")
        except ChainUnavailable:
            return Answer("retry", detail="chain unavailable")
        except LedgerError:  # a failed or unmined transaction, no funds...: not final
            return Answer("retry", detail=f"chain error: {exc}")

    def _node_info(self) -> NodeInfo | None:
        """This node on chain (blocking); None if the chain cannot say now."""
        try:
            return self.chain.ledger.node_info(self.address)
        except LedgerError:
            return None

    def _rebind(self, entry: JournalEntry) -> str | None:
        """Re-encode our payload with the next nonce; store it (and its audit record).
        None if the payload is gone (pruned by `keep_payloads`)."""
        store = self.durable.store
        payload = store.load_payload(entry.delta_hash)
        if payload is None:
            return None
        encoded = rebind(payload, entry.nonce + 1)
        new_hash = "0x" + encoded.delta_hash.hex()
        store.save_payload(new_hash, encoded.payload)
        audit = store.load_audit(entry.round)
        if audit is not None:
            store.save_audit(entry.round, {**audit, "delta_hash": new_hash})
        return new_hash
