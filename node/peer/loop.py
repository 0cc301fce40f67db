"""`Peer`: the round loop, which only sequences the parts.

    1. train E local steps on consented data (worker thread) and encode the delta (a
       merge-only round when the privacy budget on chain would not take it);
    2. commit the trained round (payload, tensors, journal entry "queued"), then wake the
       recorder, which records it on chain and announces it;
    3. merge the ready deltas of up to `fan_out` peers (pulled and verified by the
       prefetcher while we trained, their norm references decided) with the configured rule;
    4. checkpoint the merged round ("round" tensors, node.json, status.json).

Beside the loop, in one nursery: the announcement listener and the chain watch (both
offer deltas to the inbox; the watch is also the anti-entropy), the prefetcher, the
recorder and the consent watcher. Training pauses (merge-only rounds) while the privacy
budget is spent or `max_unrecorded` contributions wait for the chain (backpressure).
Worker threads return values; only trio tasks change the peer's state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import trio

from contracts.ledger import AuditLedger
from contracts.records import NodeInfo
from gossip import GossipNetwork, GossipStats
from gossip.identity import eth_address_from_peer_id, peer_id_from_secret
from node.checkpoint import CheckpointStore, JournalEntry, NodeState
from node.config import NodeConfig
from node.learner import Contribution, Learner, PeerPayload
from node.metrics import PeerMetrics
from node.peer import preflight
from node.peer.backpressure import Backpressure
from node.peer.chain_view import ChainView, Recorded
from node.peer.consent import ConsentWatcher
from node.peer.durable import Durable
from node.peer.inbox import DeltaInbox, key_of
from node.peer.norms import NormBook
from node.peer.prefetch import Prefetcher
from node.peer.recorder import Recorder
from node.peer.status import Counters, PeerStatus, snapshot
from node.peer.watch import ChainWatch

log = logging.getLogger("medgossip.peer")

CATCH_UP_WAIT = 120.0
"""longest a (re)starting peer waits for the deltas it missed before it trains again."""


class Peer:
    """One peer: its learner, durable state, chain view, and the parts around them."""

    def __init__(self, config: NodeConfig, secret: bytes, ledger: AuditLedger, learner: Learner) -> None:
        self.config = config
        self.secret = secret
        self.peer_id = peer_id_from_secret(secret)
        self.address = eth_address_from_peer_id(self.peer_id)
        self.chain = ChainView(ledger)
        self.learner = learner
        self.learner.author = self.address  # every payload's header names its recording node
        self.durable = Durable(CheckpointStore(config.checkpoint_dir))
        self.backpressure = Backpressure(self.durable, config.max_unrecorded, config.chain_poll)
        self.counters = Counters()
        self.metrics = PeerMetrics() if config.metrics_port else None
        self._open_inbox()
        self.consent: ConsentWatcher | None = None
        self.recorder: Recorder | None = None
        self.watch: ChainWatch | None = None
        self.net: GossipNetwork | None = None
        self.last_stats: GossipStats | None = None
        self.last_accuracy: tuple[float, float | None] = (0.0, None)
        self.finished = False
        self.stopped = False
        self.round_started = time.monotonic()
        self.phases: dict[str, float] = {}
        """seconds per phase of the current round outside training (encode, commit, merge...)."""
        self.sample_cap = 2**32 - 1
        """this node's sample cap on chain (read in prepare)."""
        self._recorded: list[Recorded] = []
        """records read on chain before the loop started (prepare)."""

    def _open_inbox(self) -> None:
        """The inbox and the norm book over the durable state; a ready payload waits in
        the inbox until its norm reference can be decided."""
        state = self.durable.state
        self.inbox = DeltaInbox(state.merged, state.refused)
        self.norms = NormBook(state.norms, state.refused)
        self.inbox.gate = lambda p: self.norms.reference(key_of(p.delta_hash)) is not None

    @property
    def store(self) -> CheckpointStore:
        return self.durable.store

    @property
    def state(self) -> NodeState:
        return self.durable.state

    # --- start-up (blocking, before the event loop) -----------------------------------

    def prepare(self, node: NodeInfo | None = None) -> None:
        """Checks against the chain (node.peer.preflight) and the checkpoint; blocking.
        `node`: this key's registration, when `build_peer` checked it (and the funds)
        before reading the data."""
        ledger = self.chain.ledger
        node = node if node is not None else preflight.check_node(ledger, self.address, self.peer_id)
        self.sample_cap = node.sample_cap
        self._recorded = self.chain.refresh()  # every record since deployment, and the statistics, off the loop
        preflight.check_genesis(ledger, self.learner.genesis_hash, self.config)
        state = self.store.load_state()
        self.durable.state = state
        self._open_inbox()
        if state.round:
            model, residual = self.store.load_tensors("round", state.round)
            self.learner.load_state(model)
            self.learner.encoder.set_residual(residual)
        self.learner.load_privacy_state(state.accountant)
        self.learner.trainer.rounds_done = state.round
        log.info(
            "peer ready peer=%s address=%s round=%d queued=%d", self.peer_id, self.address,
            state.round, len(state.queued()),
        )

    # --- the run ----------------------------------------------------------------------

    async def run(self, net: GossipNetwork) -> None:
        self.net = net  # our own payloads are served from disk (GossipConfig.payload_source)
        config = self.config
        self.consent = ConsentWatcher(self.durable, self.chain.ledger, self.learner.trainer, self.counters, config.chain_poll)
        self.recorder = Recorder(
            self.durable, self.chain, net, self.address, self.peer_id, config.codec, self.counters, config.chain_poll,
            consent=self.consent,
        )
        prefetcher = Prefetcher(self.inbox, self.chain, net, config, self.counters, self.norms, self.learner.payload_norm)
        self.watch = watch = ChainWatch(
            self.chain, self.inbox, self.norms, self.store, self.learner.payload_norm, self.address, config.chain_poll
        )
        watch.connected, watch.on_poll = net.connected_peers, self.write_status  # status: at least every poll
        missed_keys = watch.offer(self._recorded)
        if missed_keys:
            log.info("found %d recorded delta(s) not merged yet on chain", len(missed_keys))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._listen)
            nursery.start_soon(prefetcher.run)
            nursery.start_soon(self.recorder.run)
            nursery.start_soon(self.consent.run)
            nursery.start_soon(watch.run)
            if missed_keys and self.state.pending_trained_round() is None:
                await self._catch_up(missed_keys)
            await self._rounds()
            self.finished = True
            await self.recorder.drain(30)
            await self.write_status()
            if config.linger:
                log.info("rounds done; serving payloads%s", "" if config.linger < 0 else f" for {config.linger}s")
                with trio.move_on_after(float("inf") if config.linger < 0 else config.linger):
                    await self._merge_late()
            nursery.cancel_scope.cancel()

    async def _listen(self) -> None:
        async for ann in self.net.announcements():
            if ann.peer_id != self.peer_id:
                self.inbox.offer(ann)

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
            while not self.inbox.settled(missed):
                with trio.move_on_after(self.config.chain_poll):
                    await self.inbox.arrived.wait()
        peers = self.inbox.take(self.config.fan_out, every_peer=True)
        log.info(
            "catching up: %d of %d missed delta(s) fetched in %.1fs", len(peers), len(missed),
            time.monotonic() - started,
        )
        if peers:
            await self._merge_untrained(peers)

    # --- rounds -----------------------------------------------------------------------

    async def _rounds(self) -> None:
        pending = self.state.pending_trained_round()
        if pending is not None:
            await self._resume_trained(pending)
        while not self.config.rounds or self.state.round < self.config.rounds:
            round_ = self.state.round + 1
            self.round_started = time.monotonic()
            self.phases = {}
            if not (await self.backpressure.allows_round()
                    and await self.recorder.budget.allows_round(self.learner.trainer, self.config.local_steps)):
                self.learner.base_state = self.learner.state()  # merge only (node.peer.backpressure, .budget)
                await self._merge_round(round_, 0)
                continue
            withdrawn = frozenset(self.consent.withdrawn) if self.consent else frozenset()
            contribution = await self._timed("encode", trio.to_thread.run_sync, self.learner.train_round, round_, withdrawn)
            self.counters.train_seconds += contribution.train_seconds
            self.phases["encode"] -= contribution.train_seconds  # the rest of train_round
            await self._timed("commit", self._commit_trained, contribution)
            await self._merge_round(round_, contribution.sample_count)

    async def _resume_trained(self, round_: int) -> None:
        """The peer stopped after training round `round_` and before merging it."""
        entry = next(e for e in self.state.journal if e.round == round_)

        def load() -> None:
            model, residual = self.store.load_tensors("trained", round_)
            base = self.store.load_tensors("round", self.state.round)[0] if self.state.round else self.learner.state()
            self.learner.base_state = base
            self.learner.load_state(model)
            self.learner.encoder.set_residual(residual)

        await trio.to_thread.run_sync(load)
        log.info("resuming round=%d from its trained checkpoint delta=%s", round_, entry.delta_hash[:10])
        self.recorder.wake()
        await self._merge_round(round_, entry.sample_count)

    async def _commit_trained(self, c: Contribution) -> None:
        """Make a trained round durable (payload, trained tensors, then the journal entry),
        then hand it to the recorder."""
        key = key_of(c.delta_hash)

        def write() -> float:
            self.store.save_payload(key, c.payload)
            self.store.save_audit(
                c.round, {"delta_hash": key, "data_root": key_of(c.data_root), "subjects": [key_of(s) for s in c.subjects]}
            )
            self.store.save_tensors("trained", c.round, self.learner.state(), self.learner.encoder.get_residual())
            return self.learner.payload_norm(c.payload)

        self.norms.learn(key, await trio.to_thread.run_sync(write))
        self.state.journal.append(
            JournalEntry(
                # DP-SGD's Poisson batches can exceed the agreed size: declare at most the cap
                round=c.round, delta_hash=key, base_hash=key_of(c.base_hash), sample_count=min(c.sample_count, self.sample_cap),
                data_root=key_of(c.data_root), epsilon=c.epsilon, epsilon_total=self.learner.trainer.epsilon_total,
            )
        )
        self.state.accountant = self.learner.privacy_state()
        await self.durable.save()
        self.recorder.wake()
        log.info(
            "trained round=%d delta=%s samples=%d loss=%.4f epsilon=%.4f bytes=%d",
            c.round, key[:10], c.sample_count, c.loss, c.epsilon, len(c.payload),
        )

    async def _merge_round(self, round_: int, own_samples: int) -> None:
        if not self.inbox.has_ready() and self.config.pull_wait > 0:
            with trio.move_on_after(self.config.pull_wait):
                while not self.inbox.has_ready():
                    await self.inbox.arrived.wait()
        await self._merge(round_, own_samples, self.inbox.take(self.config.fan_out))

    async def _merge_late(self) -> None:
        """After the last round, while lingering: merge peers' deltas as they arrive.

        No training: our update is zero, so the model just takes the peers' updates it
        had not merged yet (their last rounds), as every other peer eventually does.
        """
        while True:
            if not self.inbox.has_ready():
                with trio.move_on_after(self.config.chain_poll):
                    await self.inbox.arrived.wait()
            peers = self.inbox.take(self.config.fan_out)
            if peers:  # (the chain watch rewrites the status every poll meanwhile)
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
        network = self.chain.network(own_samples or self.config.local_steps * self.config.batch_size)
        peers = [replace(p, reference_norm=self.norms.reference(key_of(p.delta_hash)) or 0.0) for p in peers]
        outcome = await self._timed(
            "merge", trio.to_thread.run_sync, lambda: self.learner.merge(own_samples, peers, network)
        )
        if outcome.clipped:
            log.warning("clipped %d update(s) to the norm bound: %s", len(outcome.clipped),
                        " ".join(key_of(h)[:10] for h in outcome.clipped))
        self.counters.clipped += len(outcome.clipped)
        for kind, refused in (("undecodable", outcome.rejected), ("over-norm", outcome.over_norm)):
            for delta_hash, reason in refused:
                self.counters.drop(kind)
                self.inbox.refuse(key_of(delta_hash), kind)
                log.warning("refused payload delta=%s (%s): %s", key_of(delta_hash)[:10], kind, reason)
        self.inbox.settle(outcome.merged, round_)
        self.counters.merged += len(outcome.merged)
        accuracy: tuple[float | None, float | None] = (None, None)
        if late or round_ % self.config.eval_every == 0 or round_ == self.config.rounds:
            accuracy = await self._timed("evaluate", trio.to_thread.run_sync, self.learner.evaluate)
            self.last_accuracy = accuracy
        await self._commit_merged(round_, len(outcome.merged), accuracy, late)

    async def _commit_merged(
        self, round_: int, merged: int, accuracy: tuple[float | None, float | None], late: bool
    ) -> None:
        model, residual = self.learner.state(), self.learner.encoder.get_residual()
        await trio.to_thread.run_sync(self.store.save_tensors, "round", round_, model, residual)
        stats = self.net.stats if self.net is not None else None
        self.state.round = round_
        self.state.history.append(
            {
                "round": round_,
                "accuracy": accuracy[0],
                "eval_accuracy": accuracy[1],
                "merged": merged,
                "bytes_sent": getattr(stats, "bytes_sent", 0),
                "train_seconds": round(self.counters.train_seconds, 4),
                "time": time.time(),
                "phases": {k: round(v, 4) for k, v in self.phases.items()},
                **({"late_merge": True} if late else {}),
            }
        )
        await self.durable.save()
        await trio.to_thread.run_sync(self.store.prune, round_, self.config.keep_payloads)
        await self.write_status()
        log.info(
            "%s=%d merged=%d%s%s seconds=%.2f", "late-merge round" if late else "round",
            round_, merged,
            "" if accuracy[0] is None else f" accuracy={accuracy[0]:.4f}",
            "" if accuracy[1] is None else f" eval_accuracy={accuracy[1]:.4f}",
            time.monotonic() - self.round_started,
        )

    # --- status -----------------------------------------------------------------------

    def status(self) -> PeerStatus:
        if self.net is not None:
            self.last_stats = self.net.stats  # kept: a stopped peer still reports what it sent
        return snapshot(self)

    async def write_status(self) -> None:
        status = self.status()
        await trio.to_thread.run_sync(status.save, self.store.folder)
        if self.metrics is not None:
            self.metrics.update(status)
