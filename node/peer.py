"""The peer process: gossip learning, audited on chain, with no coordinator.

Round loop (asynchronous; no barrier between peers):

1. train E local steps on consented data from the current model (worker thread);
2. encode the delta; make the round durable (checkpoint "trained"); queue the
   contribution for the chain; provide the payload to peers;
3. merge the deltas of up to `fan_out` peers (all of a chosen peer's deltas not merged
   yet, so every update is merged once, sooner or later). They were pulled while we
   trained, by the prefetcher: each payload's hash must be recorded on chain by the
   registered address behind the announcing peer ID before it is fetched and decoded;
   the rest are dropped and counted;
4. merge with the configured rule; checkpoint ("merged").

Beside the loop, in the same nursery: the prefetcher (above), the recorder (records queued contributions,
oldest first, then announces them; while the chain is down they stay queued in the
journal), the consent watcher (polls `ConsentWithdrawn`; a withdrawn subject leaves the
training set before the next local step), the announcement listener, and optionally a
Prometheus endpoint. Blocking work (torch, web3) runs in `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from contracts.errors import ChainUnavailable, DuplicateContribution, LedgerError
from contracts.ledger import AuditLedger
from gossip import Announcement, GossipConfig, GossipNetwork, GossipStats
from gossip.errors import FetchFailed, HashMismatch
from gossip.identity import eth_address_from_peer_id, peer_id_from_bytes, peer_id_from_secret, peer_id_to_bytes
from node.checkpoint import CheckpointStore, JournalEntry, NodeState
from node.config import NodeConfig
from node.errors import PeerError
from node.learner import Contribution, Learner, LearnerSettings, PeerPayload
from node.metrics import PeerMetrics

log = logging.getLogger("medgossip.peer")

MAX_TRIES = 3
"""a delta that failed this many pulls (not recorded, unreachable, lying holder) is refused."""
CATCH_UP_WAIT = 120.0
"""longest a (re)starting peer waits for the deltas it missed before it trains again."""
MEMBERSHIP_TTL = 10.0
"""seconds a positive on-chain membership answer is trusted (a revocation is felt after this)."""


def hexh(value: bytes) -> str:
    return "0x" + value.hex()


def short(value: bytes | str) -> str:
    text = value if isinstance(value, str) else value.hex()
    return text[:10]


@dataclass
class Counters:
    """What the peer counts; shown in status.json and exported as metrics."""

    dropped: dict[str, int] = field(default_factory=dict)
    merged: int = 0
    recorded: int = 0
    withdrawals_applied: int = 0
    excluded_images: int = 0
    train_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


class ChainView:
    """The peer's questions to the ledger, each blocking (call from a worker thread)."""

    def __init__(self, ledger: AuditLedger) -> None:
        self.ledger = ledger
        self._members: dict[str, float] = {}
        self._active = 1
        self._samples: tuple[int, int] = (0, 0)
        """(sum, count) of the sample counts recorded on chain up to _next_block."""
        self._next_block = 0
        self._fresh_until = 0.0

    def is_member(self, peer_id: str) -> bool:
        """Is this peer ID registered and active, with this exact peer ID, on chain?"""
        now = time.monotonic()
        if self._members.get(peer_id, 0.0) > now:
            return True
        try:
            address = eth_address_from_peer_id(peer_id)
            info = self.ledger.node_info(address)
        except (LedgerError, ValueError):
            return False
        ok = info is not None and info.active and info.peer_id == peer_id_to_bytes(peer_id)
        if ok:
            self._members[peer_id] = now + MEMBERSHIP_TTL
        return ok

    def active_nodes(self) -> int:
        """How many nodes are registered and active (at least 1), as of the last refresh()."""
        return self._active

    def mean_sample_count(self, default: float) -> float:
        """Mean sample count of all contributions recorded so far (`default` before any),
        as of the last refresh()."""
        total, count = self._samples
        return total / count if count else default

    def refresh(self) -> None:
        """Read the contributions recorded since the last call (incremental), and the
        registry at most every MEMBERSHIP_TTL s.

        The peer calls this every chain_poll from a background task, never in the merge
        path: every peer must see the same mean, which moves fast while the first
        contributions arrive, but a merge must not wait on a chain that is down.
        """
        try:
            head = self.ledger.block_number()
            total, count = self._samples
            for event in self.ledger.contributions(from_block=self._next_block, to_block=head):
                total += event.sample_count
                count += 1
            self._samples = (total, count)
            self._next_block = head + 1
            now = time.monotonic()
            if now >= self._fresh_until:
                self._active = max(1, sum(1 for n in self.ledger.registered_nodes() if n.active))
                self._fresh_until = now + MEMBERSHIP_TTL
        except LedgerError:
            pass  # keep what is known while the chain is away

    def verify(self, delta_hash: bytes, peer_id: str) -> tuple[int | None, str]:
        """(sample count, "") if `delta_hash` is recorded by the node behind `peer_id`."""
        ref = self.ledger.contribution(delta_hash)
        if ref is None:
            return None, "not-recorded"
        if ref.author != eth_address_from_peer_id(peer_id):
            return None, "wrong-author"
        if not self.is_member(peer_id):
            return None, "not-member"
        return ref.sample_count, ""


class Peer:
    """One peer: its learner, checkpoint, chain view, and the trio tasks around them."""

    def __init__(self, config: NodeConfig, secret: bytes, ledger: AuditLedger, learner: Learner) -> None:
        self.config = config
        self.secret = secret
        self.peer_id = peer_id_from_secret(secret)
        self.address = eth_address_from_peer_id(self.peer_id)
        self.chain = ChainView(ledger)
        self.learner = learner
        self.store = CheckpointStore(config.checkpoint_dir)
        self.state = NodeState()
        self.counters = Counters()
        self.metrics = PeerMetrics() if config.metrics_port else None
        self.withdrawn: set[bytes] = set()
        self.announced: dict[str, dict[str, Announcement]] = {}
        """per peer ID, its announced deltas not merged yet (delta hash hex -> announcement)."""
        self.failures: dict[str, int] = {}
        self.new_announcement = trio.Event()
        self.prefetched = trio.Event()
        self.pulls_done = trio.Event()
        self.ready: dict[str, list[PeerPayload]] = {}
        """verified payloads waiting for the next merge, per peer ID."""
        self.ready_keys: set[str] = set()
        self.record_wakeup = trio.Event()
        self.round_started = time.monotonic()
        self.phases: dict[str, float] = {}
        """seconds per phase of the current round outside training (encode, commit, merge...)."""
        self.net: GossipNetwork | None = None
        self.last_stats: GossipStats | None = None
        self.last_accuracy: tuple[float, float | None] = (0.0, None)
        self.finished = False

    # --- start-up -------------------------------------------------------------------

    def prepare(self) -> None:
        """Checks against the chain and the checkpoint; blocking."""
        info = self.chain.ledger.node_info(self.address)
        if info is None or not info.active:
            raise PeerError(
                f"this node's address {self.address} is not an active registered node on the "
                "ledger: ask the consortium admin to run `medgossip admin register-node`"
            )
        if info.peer_id != peer_id_to_bytes(self.peer_id):
            raise PeerError("the peer ID registered on chain for this address is not this key's")
        self.chain.refresh()  # the registry and sample-count statistics, off the loop
        genesis = self.chain.ledger.genesis_model()
        if genesis is None:
            raise PeerError("no genesis model on chain: the admin runs `medgossip admin set-genesis`")
        if genesis != self.learner.genesis_hash:
            raise PeerError(
                f"genesis model mismatch: chain has {hexh(genesis)}, this config builds "
                f"{hexh(self.learner.genesis_hash)} (check model, image_size, genesis_seed)"
            )
        self.state = self.store.load_state()
        self.withdrawn = {bytes.fromhex(h[2:]) for h in self.state.withdrawn}
        if self.state.round:
            model, residual = self.store.load_tensors("round", self.state.round)
            self.learner.load_state(model)
            self.learner.encoder.set_residual(residual)
        self.learner.load_privacy_state(self.state.accountant)
        self.learner.trainer.rounds_done = self.state.round
        log.info(
            "peer ready peer=%s address=%s round=%d queued=%d", self.peer_id, self.address,
            self.state.round, len(self.state.queued()),
        )

    # --- the round loop -------------------------------------------------------------

    async def run(self, net: GossipNetwork) -> None:
        self.net = net  # our own payloads are served from disk (GossipConfig.payload_source)
        try:
            missed = await trio.to_thread.run_sync(self._backfill)
        except LedgerError as exc:
            missed = []
            log.warning("could not look for missed deltas on chain: %s", exc)
        for ann in missed:
            self.announced.setdefault(ann.peer_id, {})[hexh(ann.delta_hash)] = ann
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._listen)
            nursery.start_soon(self._prefetch_loop)
            nursery.start_soon(self._record_loop)
            nursery.start_soon(self._consent_loop)
            nursery.start_soon(self._chain_stats_loop)
            if missed and self.state.pending_trained_round() is None:
                await self._catch_up({hexh(a.delta_hash) for a in missed})
            await self._rounds()
            self.finished = True
            await self._drain_records()
            self.write_status()
            if self.config.linger:
                log.info("rounds done; serving payloads%s", "" if self.config.linger < 0 else f" for {self.config.linger}s")
                with trio.move_on_after(float("inf") if self.config.linger < 0 else self.config.linger):
                    await self._merge_late()
            nursery.cancel_scope.cancel()

    async def _catch_up(self, missed: set[str]) -> None:
        """Before training again, merge what the network recorded while we were away.

        A hospital that joins late (or a peer that was down for long) would otherwise
        train its next rounds from a model far behind everyone else's and send updates
        made on that stale base. Waits, at most CATCH_UP_WAIT s, until every missed delta
        is fetched or given up on, then merges them all at once without training (like a
        late merge), so the first round trains from the network's model.
        """
        started = time.monotonic()
        with trio.move_on_after(CATCH_UP_WAIT):
            while any(k not in self.ready_keys and k not in self.state.refused for k in missed):
                self.prefetched = trio.Event()
                with trio.move_on_after(self.config.chain_poll):
                    await self.prefetched.wait()
        peers = self._take_ready(every_peer=True)
        log.info(
            "catching up: %d of %d missed delta(s) fetched in %.1fs", len(peers), len(missed),
            time.monotonic() - started,
        )
        if peers:
            await self._merge_untrained(peers)

    async def _rounds(self) -> None:
        pending = self.state.pending_trained_round()
        if pending is not None:
            await self._resume_trained(pending)
        while not self.config.rounds or self.state.round < self.config.rounds:
            round_ = self.state.round + 1
            self.round_started = time.monotonic()
            self.phases = {}
            contribution = await self._timed(
                "encode", trio.to_thread.run_sync, self.learner.train_round, round_, frozenset(self.withdrawn)
            )
            self.counters.train_seconds += contribution.train_seconds
            self.phases["encode"] -= contribution.train_seconds  # the rest of train_round
            await self._timed("commit", trio.to_thread.run_sync, self._commit_trained, contribution)
            self.record_wakeup.set()
            await self._merge_round(round_, contribution.sample_count)

    async def _resume_trained(self, round_: int) -> None:
        """The peer stopped after training round `round_` and before merging it."""
        entry = next(e for e in self.state.journal if e.round == round_)
        model, residual = self.store.load_tensors("trained", round_)
        base, _ = self.store.load_tensors("round", self.state.round) if self.state.round else (self.learner.state(), {})
        self.learner.base_state = base
        self.learner.load_state(model)
        self.learner.encoder.set_residual(residual)
        payload = self.store.load_payload(entry.delta_hash)
        if payload is not None and self.net is not None:
            self.net.provide(bytes.fromhex(entry.delta_hash[2:]), payload)
        log.info("resuming round=%d from its trained checkpoint delta=%s", round_, short(entry.delta_hash))
        self.record_wakeup.set()
        await self._merge_round(round_, entry.sample_count)

    def _commit_trained(self, c: Contribution) -> None:
        """Make a trained round durable: payload, trained tensors, then the journal entry."""
        key = hexh(c.delta_hash)
        self.store.save_payload(key, c.payload)
        self.store.save_audit(
            c.round, {"delta_hash": key, "data_root": hexh(c.data_root), "subjects": [hexh(s) for s in c.subjects]}
        )
        self.store.save_tensors("trained", c.round, self.learner.state(), self.learner.encoder.get_residual())
        self.state.journal.append(
            JournalEntry(
                round=c.round, delta_hash=key, base_hash=hexh(c.base_hash), sample_count=c.sample_count,
                data_root=hexh(c.data_root), epsilon=c.epsilon,
            )
        )
        self.state.accountant = self.learner.privacy_state()
        self.store.save_state(self.state)
        if self.net is not None:
            self.net.provide(c.delta_hash, c.payload)
        log.info(
            "trained round=%d delta=%s samples=%d loss=%.4f epsilon=%.4f bytes=%d",
            c.round, short(key), c.sample_count, c.loss, c.epsilon, len(c.payload),
        )

    async def _merge_round(self, round_: int, own_samples: int) -> None:
        if not self.ready and self.config.pull_wait > 0:
            with trio.move_on_after(self.config.pull_wait):
                while not self.ready:
                    self.prefetched = trio.Event()
                    await self.prefetched.wait()
        await self._merge(round_, own_samples, self._take_ready())

    async def _merge_late(self) -> None:
        """After the last round, while lingering: merge peers' deltas as they arrive.

        No training: our update is zero, so the model just takes the peers' updates it
        had not merged yet (their last rounds), as every other peer eventually does.
        """
        while True:
            self.prefetched = trio.Event()
            if not self.ready:
                await self.prefetched.wait()
            peers = self._take_ready()
            if peers:
                await self._merge_untrained(peers)

    async def _merge_untrained(self, peers: list[PeerPayload]) -> None:
        """Merge peers' updates into the model as it is: our own update is zero."""
        self.round_started = time.monotonic()
        self.phases = {}
        self.learner.base_state = self.learner.state()
        await self._merge(self.state.round, 0, peers, late=True)

    async def _timed(self, phase: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Await fn(*args), adding its wall time to this round's `phase` (status, history)."""
        started = time.monotonic()
        try:
            return await fn(*args)
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.monotonic() - started

    async def _merge(self, round_: int, own_samples: int, peers: list[PeerPayload], late: bool = False) -> None:
        outcome = await self._timed(
            "merge", trio.to_thread.run_sync,
            lambda: self.learner.merge(own_samples, peers, self._network_weight(own_samples)),
        )
        for delta_hash, reason in outcome.rejected:
            self.counters.drop("undecodable")
            self.state.refused[hexh(delta_hash)] = "undecodable"
            log.warning("rejected payload delta=%s reason=%s", short(delta_hash), reason)
        for delta_hash in outcome.merged:
            self.state.merged[hexh(delta_hash)] = round_
        for pending in self.announced.values():
            for key in [k for k in pending if k in self.state.merged or k in self.state.refused]:
                del pending[key]
        self.counters.merged += len(outcome.merged)
        accuracy: tuple[float | None, float | None] = (None, None)
        if late or round_ % self.config.eval_every == 0 or round_ == self.config.rounds:
            accuracy = await self._timed("evaluate", trio.to_thread.run_sync, self.learner.evaluate)
            self.last_accuracy = accuracy
        await trio.to_thread.run_sync(self._commit_merged, round_, outcome.merged, accuracy, late)

    def _commit_merged(
        self, round_: int, merged: tuple[bytes, ...], accuracy: tuple[float | None, float | None], late: bool = False
    ) -> None:
        self.store.save_tensors("round", round_, self.learner.state(), self.learner.encoder.get_residual())
        self.state.round = round_
        stats = self.net.stats if self.net is not None else None
        self.state.history.append(
            {
                "round": round_,
                "accuracy": accuracy[0],
                "eval_accuracy": accuracy[1],
                "merged": len(merged),
                "bytes_sent": getattr(stats, "bytes_sent", 0),
                "train_seconds": round(self.counters.train_seconds, 4),
                "time": time.time(),
                "phases": {k: round(v, 4) for k, v in self.phases.items()},
                **({"late_merge": True} if late else {}),
            }
        )
        self.store.save_state(self.state)
        self.store.prune(keep_round=round_, keep_payloads=self.config.keep_payloads)
        self.write_status()
        log.info(
            "%s=%d merged=%d%s%s seconds=%.2f", "late-merge round" if late else "round",
            round_, len(merged),
            "" if accuracy[0] is None else f" accuracy={accuracy[0]:.4f}",
            "" if accuracy[1] is None else f" eval_accuracy={accuracy[1]:.4f}",
            time.monotonic() - self.round_started,
        )

    # --- pulling peers' deltas ------------------------------------------------------

    def _network_weight(self, own_samples: int) -> float:
        """The merge normaliser: active nodes x the mean sample count recorded on chain.

        Both come from the chain, so every peer computes (nearly) the same number: the
        mean moves as contributions accumulate, and is the same for all readers of the
        same blocks. Before anything is recorded, our own sample count stands in for the
        mean (a peer merging alone then takes 1/N of its step). Both are cached by
        ChainView.refresh(): no chain call here.
        """
        default = own_samples or self.config.local_steps * self.config.batch_size
        return self.chain.active_nodes() * self.chain.mean_sample_count(default)

    def _take_ready(self, every_peer: bool = False) -> list[PeerPayload]:
        """All verified payloads of up to `fan_out` peers (random; or of every peer)."""
        if self.config.fan_out == 0:
            return []
        chosen = [pid for pid, ready in self.ready.items() if ready]
        random.shuffle(chosen)
        taken = [p for pid in (chosen if every_peer else chosen[: self.config.fan_out]) for p in self.ready.pop(pid)]
        for p in taken:
            self.announced.get(p.source, {}).pop(hexh(p.delta_hash), None)
            self.ready_keys.discard(hexh(p.delta_hash))
        return taken

    async def _prefetch_loop(self) -> None:
        """Verify and fetch announced deltas while the round loop trains.

        Up to `fan_out` peers are pulled from at once, each peer's unmerged deltas one
        after another; verified payloads wait in `self.ready` for the next merge.
        """
        busy: set[str] = set()

        async def pull_peer(pid: str) -> None:
            try:
                while True:
                    todo = [
                        a for k, a in self.announced.get(pid, {}).items()
                        if k not in self.ready_keys and k not in self.state.merged and k not in self.state.refused
                    ]
                    if not todo:
                        return
                    ann = max(todo, key=lambda a: a.round)
                    payload = await self._pull_one(ann)
                    if payload is None:
                        if hexh(ann.delta_hash) in self.announced.get(pid, {}):
                            return  # not given up on: retry on the next announcement
                        continue
                    self.ready.setdefault(pid, []).append(payload)
                    self.ready_keys.add(hexh(ann.delta_hash))
                    self.prefetched.set()
            finally:
                busy.discard(pid)
                self.pulls_done.set()

        async with trio.open_nursery() as nursery:
            while True:
                idle = [pid for pid, pending in self.announced.items() if pending and pid not in busy]
                random.shuffle(idle)
                for pid in idle[: max(0, self.config.fan_out - len(busy))]:
                    busy.add(pid)
                    nursery.start_soon(pull_peer, pid)
                self.pulls_done = trio.Event()
                with trio.move_on_after(self.config.chain_poll):
                    await self._any_event(self.new_announcement, self.pulls_done)
                self.new_announcement = trio.Event()

    @staticmethod
    async def _any_event(*events: trio.Event) -> None:
        async with trio.open_nursery() as nursery:
            for event in events:
                async def wait(e: trio.Event = event) -> None:
                    await e.wait()
                    nursery.cancel_scope.cancel()
                nursery.start_soon(wait)

    async def _pull_one(self, ann: Announcement) -> PeerPayload | None:
        """Verify on chain, then fetch; None (counted, logged) when that fails."""
        key = hexh(ann.delta_hash)
        try:
            samples, reason = await trio.to_thread.run_sync(self.chain.verify, ann.delta_hash, ann.peer_id)
        except ChainUnavailable:
            self.counters.drop("unverifiable-chain-down")
            return None
        except LedgerError as exc:
            self.counters.drop("unverifiable")
            log.warning("cannot verify delta=%s: %s", short(key), exc)
            return None
        if samples is None:
            self.counters.drop(reason)
            log.warning("dropped delta=%s from peer=%s: %s", short(key), ann.peer_id, reason)
            self._failed(ann, reason, final=reason != "not-recorded")
            return None
        # The author first; then a few others, which hold it if they already fetched it.
        others = [p for p in self.net.connected_peers() if p != ann.peer_id]
        random.shuffle(others)
        holders = [ann.peer_id, *others]
        try:
            payload = await self.net.fetch(
                ann.delta_hash, from_peers=holders[: 1 + self.config.fan_out], ordered=True
            )
        except FetchFailed as exc:
            lied = any(isinstance(r, HashMismatch) for r in exc.reasons.values())
            self.counters.drop("payload-hash-mismatch" if lied else "fetch-failed")
            log.warning("fetch failed delta=%s: %s", short(key), exc)
            self._failed(ann, "payload-hash-mismatch" if lied else "fetch-failed", final=False)
            return None
        return PeerPayload(ann.peer_id, ann.delta_hash, payload, samples)

    def _backfill(self) -> list[Announcement]:
        """Others' deltas recorded on chain that we never merged (blocking).

        Gossip does not replay announcements to a peer that was down or joins late; the
        chain has them all, and their authors keep serving them (`keep_payloads`). One
        that can no longer be fetched is given up on after MAX_TRIES attempts.
        """
        ledger = self.chain.ledger
        authors = {n.address: n for n in ledger.registered_nodes() if n.active}
        missed = []
        for event in ledger.contributions(from_block=0):
            key = hexh(event.delta_hash)
            author = authors.get(event.node)
            if author is None or event.node == self.address or key in self.state.merged or key in self.state.refused:
                continue
            missed.append(Announcement(peer_id_from_bytes(author.peer_id), event.round, event.delta_hash, 0, "unknown", {}))
        if missed:
            log.info("found %d recorded delta(s) not merged yet on chain", len(missed))
        return missed

    def _failed(self, ann: Announcement, reason: str, final: bool) -> None:
        """Count a failed pull; give up on the delta at once if `final`, else after a few tries."""
        key = hexh(ann.delta_hash)
        self.failures[key] = self.failures.get(key, 0) + 1
        if final or self.failures[key] >= MAX_TRIES:
            self.state.refused[key] = reason  # never try this one again
            self.announced.get(ann.peer_id, {}).pop(key, None)
            self.failures.pop(key, None)

    async def _listen(self) -> None:
        async for ann in self.net.announcements():
            key = hexh(ann.delta_hash)
            if ann.peer_id == self.peer_id or key in self.state.merged or key in self.state.refused:
                continue
            self.announced.setdefault(ann.peer_id, {})[key] = ann
            self.new_announcement.set()

    # --- the chain: records and consent ---------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            await self._record_queued()
            with trio.move_on_after(self.config.chain_poll):
                await self.record_wakeup.wait()
            self.record_wakeup = trio.Event()

    async def _record_queued(self) -> None:
        """Record queued contributions oldest first; announce each once recorded."""
        for entry in self.state.queued():
            try:
                tx_hash, block = await trio.to_thread.run_sync(self._record, entry)
            except ChainUnavailable:
                log.warning("chain unavailable: %d contribution(s) queued", len(self.state.queued()))
                return
            self.state.mark_recorded(entry.delta_hash, tx_hash, block)
            await trio.to_thread.run_sync(self.store.save_state, self.state)
            self.counters.recorded += 1
            log.info("recorded round=%d delta=%s tx=%s block=%d", entry.round, short(entry.delta_hash), short(tx_hash), block)
            await self.net.announce(
                Announcement(
                    peer_id=self.peer_id, round=entry.round, delta_hash=bytes.fromhex(entry.delta_hash[2:]),
                    size=len(self.store.load_payload(entry.delta_hash) or b""), codec=self.config.codec,
                    metadata={"samples": str(entry.sample_count)},
                )
            )

    def _record(self, entry: JournalEntry) -> tuple[str, int]:
        ledger = self.chain.ledger
        delta = bytes.fromhex(entry.delta_hash[2:])
        try:
            tx = ledger.record_contribution(
                delta, bytes.fromhex(entry.base_hash[2:]), entry.round, entry.sample_count,
                bytes.fromhex(entry.data_root[2:]), entry.epsilon,
            )
            return tx.tx_hash, tx.block_number
        except DuplicateContribution:
            # Recorded before a crash, not yet journaled: ours if the chain says so.
            ref = ledger.contribution(delta)
            if ref is None or ref.author != self.address:
                raise PeerError(f"delta {entry.delta_hash} is recorded by another node") from None
            return "", 0

    async def _drain_records(self) -> None:
        with trio.move_on_after(30):
            while self.state.queued():
                self.record_wakeup.set()
                await trio.sleep(0.2)

    async def _chain_stats_loop(self) -> None:
        while True:
            await trio.to_thread.run_sync(self.chain.refresh)
            await trio.sleep(self.config.chain_poll)

    async def _consent_loop(self) -> None:
        while True:
            try:
                await trio.to_thread.run_sync(self._apply_withdrawals)
            except ChainUnavailable:
                pass
            await trio.sleep(self.config.chain_poll)

    def _apply_withdrawals(self) -> None:
        ledger = self.chain.ledger
        head = ledger.block_number()
        if head < self.state.withdrawals_block:
            return
        events = ledger.withdrawals(from_block=self.state.withdrawals_block, to_block=head)
        fresh = [e.subject for e in events if e.subject not in self.withdrawn]
        if fresh:
            local = self.learner.trainer.exclude(fresh)
            self.withdrawn.update(fresh)
            self.state.withdrawn = [hexh(s) for s in sorted(self.withdrawn)]
            self.counters.withdrawals_applied += len(fresh)
            self.counters.excluded_images += local
            log.info(
                "consent withdrawal applied: %d subject(s), %d local image(s) excluded before the next step",
                len(fresh), local,
            )
        self.state.withdrawals_block = head + 1
        self.store.save_state(self.state)

    # --- status -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        if self.net is not None:
            self.last_stats = self.net.stats  # kept: a stopped peer still reports what it sent
        stats = self.last_stats
        last = self.state.journal[-1] if self.state.journal else None
        return {
            "peer_id": self.peer_id,
            "address": self.address,
            "pid": os.getpid(),
            "round": self.state.round,
            "rounds_target": self.config.rounds,
            "finished": self.finished,
            "peers": len(self.net.connected_peers()) if self.net is not None else 0,
            "last_contribution": None if last is None else {
                "round": last.round, "delta_hash": last.delta_hash, "status": last.status, "tx_hash": last.tx_hash,
            },
            "queued_records": len(self.state.queued()),
            "accuracy": self.last_accuracy[0],
            "eval_accuracy": self.last_accuracy[1],
            "epsilon_total": sum(e.epsilon for e in self.state.journal),
            "merged_total": self.counters.merged,
            "recorded_total": self.counters.recorded,
            "withdrawn_subjects": len(self.withdrawn),
            "withdrawals_applied": self.counters.withdrawals_applied,
            "excluded_images": self.counters.excluded_images,
            "dropped": dict(self.counters.dropped),
            "gossip_dropped": dict(stats.dropped) if stats is not None else {},
            "bytes_sent": getattr(stats, "bytes_sent", 0),
            "bytes_received": getattr(stats, "bytes_received", 0),
            "train_seconds": round(self.counters.train_seconds, 3),
            "wall_seconds": round(time.monotonic() - self.counters.started, 3),
            "updated": time.time(),
        }

    def write_status(self) -> None:
        status = self.status()
        self.store.write_status(status)
        if self.metrics is not None:
            self.metrics.update(status)


# --- wiring -------------------------------------------------------------------------


def resolve_chain(config: NodeConfig) -> tuple[str, str]:
    """(rpc_url, contract) from the config or its devnet.json."""
    rpc, contract = config.rpc_url, config.contract
    if config.devnet is not None and (not rpc or not contract):
        try:
            info = json.loads(Path(config.devnet).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PeerError(f"cannot read devnet file {config.devnet}: {exc}") from exc
        rpc = rpc or info["rpc_url"]
        contract = contract or info["contract"]
    if not rpc or not contract:
        raise PeerError("no chain configured: set rpc_url and contract, or devnet (a devnet.json)")
    return rpc, contract


def learner_settings(config: NodeConfig) -> LearnerSettings:
    from node.privacy import DPConfig

    dp = None
    if config.dp_enabled:
        dp = DPConfig(
            noise_multiplier=config.dp_noise_multiplier,
            max_grad_norm=config.dp_max_grad_norm,
            delta=config.dp_delta,
        )
    return LearnerSettings(
        model=config.model, image_size=config.image_size, num_classes=config.num_classes,
        genesis_seed=config.genesis_seed, seed=config.seed, local_steps=config.local_steps,
        batch_size=config.batch_size, lr=config.lr, merge=config.merge, codec=config.codec,
        topk_fraction=config.topk_fraction, holdout_fraction=config.holdout_fraction, dp=dp,
    )


def build_peer(config: NodeConfig) -> Peer:
    """Everything blocking before the event loop: key, chain, data, learner, checkpoint."""
    import torch

    from gossip.identity import load_or_create_secret
    from node.data import load_image_set

    torch.set_num_threads(1)
    secret = load_or_create_secret(config.key_file)
    rpc, contract = resolve_chain(config)
    ledger = AuditLedger(rpc, contract, private_key="0x" + secret.hex())
    images = load_image_set(config.data_dir, size=config.image_size)
    eval_images = load_image_set(config.eval_data, size=config.image_size) if config.eval_data else None
    learner = Learner(learner_settings(config), images, eval_images)
    peer = Peer(config, secret, ledger, learner)
    peer.prepare()
    return peer


async def run_peer(config: NodeConfig, on_ready: Callable[[Peer], Awaitable[None]] | None = None) -> None:
    """Start a peer and run it until its rounds are done or SIGINT/SIGTERM arrives."""
    peer = await trio.to_thread.run_sync(build_peer, config)
    network_id = config.network_id or f"{peer.chain.ledger.chain_id}-{peer.chain.ledger.address.lower()}"

    async def is_member(peer_id: str) -> bool:
        return await trio.to_thread.run_sync(peer.chain.is_member, peer_id)

    gossip_config = GossipConfig(
        secret=peer.secret, network_id=network_id, listen=list(config.listen),
        bootstrap=list(config.bootstrap), is_member=is_member,
        payload_source=lambda delta_hash: peer.store.load_payload(hexh(delta_hash)),
    )
    if peer.metrics is not None:
        peer.metrics.serve(config.metrics_port)
    async with GossipNetwork(gossip_config) as net:
        log.info("listening on %s", " ".join(net.listen_addrs))
        peer.store.folder.mkdir(parents=True, exist_ok=True)
        (peer.store.folder / "addrs.json").write_text(json.dumps(net.listen_addrs))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
            if on_ready is not None:
                await on_ready(peer)
            await peer.run(net)
            nursery.cancel_scope.cancel()
    peer.net = None  # closed: status() must not ask it for peers any more
    peer.write_status()
    log.info("stopped at round=%d", peer.state.round)


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            scope.cancel()
            return
