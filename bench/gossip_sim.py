"""A discrete-event simulation of N medgossip peers in one process (driven by bench/simulate.py).

The peers run the project's own code; only the network, the chain and the clock are
simulated. Reused as they are:

- ``node.learner.Learner``: ``train_round`` (E local steps, the delta encoded by the
  network's codec, the author applying its own decoded payload) and ``merge`` (decode
  with the header checks, norm clip and refusal, the ``MergeStrategy``, the share of the
  ``Network``, ``apply_delta``);
- ``node.codec``: top-k with error feedback (each Learner's encoder); the bytes counted
  are the real payloads' lengths;
- ``gossip.sampling.PeerSampler``: each author picks its fan-out among the peers online
  (seeded, on the simulated clock); a target that went offline before its payload
  arrived is marked misbehaving and avoided for ``penalty_rounds``;
- ``node.peer.inbox.DeltaInbox``: offer / deliver / take(fan_out) / settle / refuse, so
  the "never merged twice" rule, the fan-out cap of a merge and the norm gate are the peer's;
- ``node.peer.norms.NormBook``: reference norms from the chain order;
- ``node.data.dataset.preprocess`` (per-image standardisation) for the digits.

Not reused, and why:

- libp2p, GossipSub and the chain: replaced by timed events (latency drawn per message,
  transfer at ``bandwidth``) and a list as the chain, which is the point of simulating.
- The pull path (``node.peer.prefetch`` + the chain watch): a real peer is offered every
  recorded delta and merges each one, sooner or later (``NodeConfig.fan_out``: "each
  peer's deltas are all merged once"): O(N) payloads per peer per round, 10^6 decodes per
  simulated round at N = 1,000. Here each author pushes its payload to ``fan_out``
  sampled peers, the O(fan-out) scheme the issue asks about; what arrives goes through
  the inbox as a pulled payload would.
- One ``NormBook`` shared by every peer, holding every payload's norm: a real peer knows
  the norms of the payloads it fetched only, so with push gossip the other members of a
  window never reach it and its gate would wait ``WITHHELD_AFTER`` (60 s) on each delta.
  The shared book is what every peer computes when it knows every norm (e.g. if the norm
  were recorded on chain with the contribution).
- The model: ``node.models.build_model`` has no cheap model, so each Learner is built as
  usual and its trainer, encoder and model id are then swapped for a linear softmax model
  on the 8x8 digits (:func:`digits_learner`).
- A returning peer resumes from its own (stale) model: the peer's catch-up
  (``Peer._catch_up``, which waits for the missed recorded deltas) is not simulated.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from gossip import Announcement
from gossip.identity import eth_address_from_peer_id, peer_id_from_secret
from gossip.sampling import PeerSampler
from node.codec import CodecSpec, DeltaEncoder
from node.data import ImageSet
from node.data.dataset import preprocess
from node.learner import Learner, LearnerSettings, Network, PeerPayload
from node.models import state_hash
from node.peer.inbox import DeltaInbox, key_of
from node.peer.norms import ChainRecord, NormBook
from node.trainer import LocalTrainer

MODEL_ID = "digits-linear"
"""the model id written into every simulated payload header."""

PATIENT_IMAGES = 5
"""images per synthetic patient (issue 12's setup)."""

NORMALISERS = ("neighbourhood", "network")
"""`network`: Network(N registered nodes, chain mean), as the peer computes it;
`neighbourhood`: Network(fan_out + 1, chain mean): the peers one merge hears from."""


@dataclass(frozen=True)
class SimConfig:
    """One simulated run."""

    peers: int
    rounds: int
    """simulated time, in nominal rounds (`round_seconds` each)."""
    fan_out: int = 5
    churn: float = 0.1
    """fraction of the online peers that go offline at each round boundary."""
    rejoin: float = 0.5
    """chance per round boundary that an offline peer comes back."""
    normaliser: str = "neighbourhood"
    local_steps: int = 10
    batch_size: int = 32
    lr: float = 0.1
    codec: str = "topk"
    topk_fraction: float = 0.1
    merge: str = "mean"
    alpha: float = 0.5
    shard_min: int = 32
    shard_max: int = 128
    round_seconds: float = 1.0
    speed_sigma: float = 0.25
    """per-peer training speed: lognormal spread of its round time."""
    latency_median: float = 0.04
    latency_sigma: float = 0.8
    bandwidth: float = 12.5e6
    """bytes per second of each transfer (100 Mbit/s)."""
    penalty_rounds: float = 5.0
    eval_every: int = 1
    pairs: int = 200
    seed: int = 0


@dataclass(frozen=True)
class Digits:
    """The sklearn digits, standardised per image, split into a training pool and a test set."""

    pool: ImageSet
    test: ImageSet


@dataclass(frozen=True)
class RunResult:
    config: SimConfig
    ticks: list[int]
    accuracy_mean: list[float]
    accuracy_p10: list[float]
    accuracy_p90: list[float]
    accuracy_min: list[float]
    accuracy_max: list[float]
    disagreement_l2: list[float]
    """mean L2 distance between the models of `pairs` random pairs of peers."""
    online: list[int]
    bytes_sent_per_peer_round: float
    bytes_received_per_peer_round: float
    payload_bytes_mean: float
    trained_rounds: int
    merged_updates: int
    clipped: int
    refused: int
    lost_messages: int
    share_mean: float
    wall_seconds: float


def load_digits_split(seed: int = 0, test_fraction: float = 0.2) -> Digits:
    """The 1,797 digits through the peers' preprocessing; a stratified test set."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = np.stack([preprocess(plane.astype(np.float32), 8) for plane in raw.images])[:, None]
    labels = raw.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = np.concatenate([
        rng.permutation(np.flatnonzero(labels == c))[: round(test_fraction * int((labels == c).sum()))]
        for c in range(10)
    ])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True
    subjects = tuple(hashlib.sha256(b"digit-%d" % i).digest() for i in range(len(labels)))  # test set only

    def part(mask: np.ndarray) -> ImageSet:
        idx = np.flatnonzero(mask)
        return ImageSet(images[idx], labels[idx], tuple(subjects[i] for i in idx))

    return Digits(pool=part(~is_test), test=part(is_test))


def dirichlet_shards(pool: ImageSet, peers: int, alpha: float, sizes: tuple[int, int], seed: int) -> list[ImageSet]:
    """Per peer: a class mix ~ Dirichlet(alpha) and a size in `sizes`, drawn from the pool.

    Shards overlap across peers (1,437 images cannot give 1,000 hospitals disjoint sets);
    within a shard each image appears once; every PATIENT_IMAGES images are one patient
    of that hospital (the subjects behind each round's data root).
    """
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(pool.labels == c) for c in range(10)]
    shards = []
    for _ in range(peers):
        size = int(rng.integers(sizes[0], sizes[1] + 1))
        counts = rng.multinomial(size, rng.dirichlet([alpha] * 10))
        idx = np.concatenate([
            rng.choice(by_class[c], min(int(n), len(by_class[c])), replace=False) for c, n in enumerate(counts)
        ])
        patients = tuple(
            hashlib.sha256(b"sim-patient-%d-%d" % (len(shards), k // PATIENT_IMAGES)).digest() for k in range(len(idx))
        )
        shards.append(ImageSet(pool.images[idx], pool.labels[idx], patients))
    return shards


def linear_model(seed: int = 0) -> nn.Module:
    """The genesis model: linear softmax over the 64 pixels, drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def digits_learner(settings: LearnerSettings, images: ImageSet, author: str) -> Learner:
    """A project `Learner` whose model is the linear one (see the module docstring)."""
    learner = Learner(replace(settings, model="small-cnn"), images)
    model = linear_model(settings.genesis_seed)
    learner.trainer = LocalTrainer(
        model, images, seed=settings.seed, lr=settings.lr, batch_size=settings.batch_size, holdout_fraction=0.0
    )
    learner.settings = replace(settings, model=MODEL_ID)
    learner.encoder = DeltaEncoder(CodecSpec(settings.codec, settings.topk_fraction), model_id=MODEL_ID)
    learner.genesis_hash = state_hash(model.state_dict())
    learner.base_state = learner.state()
    learner.author = author
    return learner


def peer_identity(index: int) -> tuple[str, str]:
    """A deterministic libp2p peer ID and its Ethereum address for simulated peer `index`."""
    secret = hashlib.sha256(b"medgossip-sim-peer-%d" % index).digest()
    peer_id = peer_id_from_secret(secret)
    return peer_id, eth_address_from_peer_id(peer_id)


def _flat(learner: Learner) -> torch.Tensor:
    return torch.cat([t.reshape(-1).float() for t in learner.state().values()])


class Simulation:
    """N peers, a chain (a list), a clock and an event queue."""

    def __init__(self, config: SimConfig, digits: Digits) -> None:
        if config.normaliser not in NORMALISERS:
            raise ValueError(f"normaliser must be one of {NORMALISERS}, got {config.normaliser!r}")
        self.config = config
        self.test = digits.test
        self.now = 0.0
        self.rng = np.random.default_rng(config.seed)
        random.seed(config.seed)  # DeltaInbox.take shuffles with the random module
        self.shards = dirichlet_shards(
            digits.pool, config.peers, config.alpha, (config.shard_min, config.shard_max), config.seed
        )
        settings = LearnerSettings(
            local_steps=config.local_steps, batch_size=config.batch_size, lr=config.lr, merge=config.merge,
            codec=config.codec, topk_fraction=config.topk_fraction, holdout_fraction=0.0,
        )
        self.ids = [peer_identity(i) for i in range(config.peers)]
        self.learners = [
            digits_learner(replace(settings, seed=i), shard, address)
            for i, (shard, (_, address)) in enumerate(zip(self.shards, self.ids))
        ]
        clock: Callable[[], float] = lambda: self.now
        self.book = NormBook({}, clock=clock)
        self.inboxes = [DeltaInbox({}, {}, clock=clock) for _ in range(config.peers)]
        for inbox in self.inboxes:
            inbox.gate = lambda p: self.book.reference(key_of(p.delta_hash)) is not None
        penalty = config.penalty_rounds * config.round_seconds
        self.samplers = [
            PeerSampler(peer_id, penalty, rng=random.Random(config.seed * 100_003 + i), clock=clock)
            for i, (peer_id, _) in enumerate(self.ids)
        ]
        self.index = {peer_id: i for i, (peer_id, _) in enumerate(self.ids)}
        self.speed = self.rng.lognormal(0.0, config.speed_sigma, config.peers)
        self.online = np.ones(config.peers, dtype=bool)
        self.generation = [0] * config.peers
        self.round_of = [0] * config.peers
        self.cap = config.local_steps * config.batch_size
        self.samples_total = 0
        self.samples_count = 0
        self.sent = np.zeros(config.peers)
        self.received = np.zeros(config.peers)
        self.payload_sizes: list[int] = []
        self.counts = {"merged": 0, "clipped": 0, "refused": 0, "lost": 0}
        self.shares: list[float] = []
        self._queue: list[tuple[float, int, str, int, object]] = []
        self._seq = itertools.count()

    # --- events -----------------------------------------------------------------------

    def _push(self, at: float, kind: str, peer: int, data: object = None) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), kind, peer, data))

    def _schedule_round(self, i: int) -> None:
        duration = self.config.round_seconds * self.speed[i] * self.rng.uniform(0.9, 1.1)
        self._push(self.now + duration, "round", i, self.generation[i])

    def _network(self) -> Network:
        mean = self.samples_total / self.samples_count if self.samples_count else float(self.cap)
        nodes = self.config.peers if self.config.normaliser == "network" else self.config.fan_out + 1
        return Network(nodes, mean)

    def _round(self, i: int) -> None:
        """Train, record, announce to the fan-out, merge what arrived: `Peer._rounds`."""
        learner, inbox = self.learners[i], self.inboxes[i]
        self.round_of[i] += 1
        c = learner.train_round(self.round_of[i], frozenset())
        weight = min(c.sample_count, self.cap)
        self.samples_total += weight
        self.samples_count += 1
        key = key_of(c.delta_hash)
        self.book.extend([ChainRecord(key, learner.author)])
        self.book.learn(key, learner.payload_norm(c.payload))
        self.payload_sizes.append(len(c.payload))
        peer_id = self.ids[i][0]
        ann = Announcement(peer_id, c.round, c.delta_hash, len(c.payload), self.config.codec)
        payload = PeerPayload(peer_id, c.delta_hash, c.payload, weight, learner.author, c.round)
        live = [self.ids[j][0] for j in np.flatnonzero(self.online)]
        for target in self.samplers[i].sample(live, self.config.fan_out):
            delay = self.rng.lognormal(np.log(self.config.latency_median), self.config.latency_sigma)
            self._push(self.now + delay + len(c.payload) / self.config.bandwidth, "arrive", self.index[target], (i, ann, payload))
            self.sent[i] += len(c.payload)
        taken = [
            replace(p, reference_norm=self.book.reference(key_of(p.delta_hash)) or 0.0)
            for p in inbox.take(self.config.fan_out)
        ]
        outcome = learner.merge(weight, taken, self._network())
        for delta_hash, reason in (*outcome.rejected, *outcome.over_norm):
            inbox.refuse(key_of(delta_hash), reason)
        inbox.settle(outcome.merged, self.round_of[i])
        self.counts["merged"] += len(outcome.merged)
        self.counts["clipped"] += len(outcome.clipped)
        self.counts["refused"] += len(outcome.rejected) + len(outcome.over_norm)
        self.shares.append(outcome.share)
        self._schedule_round(i)

    def _arrive(self, j: int, data: tuple[int, Announcement, PeerPayload]) -> None:
        sender, ann, payload = data
        if not self.online[j]:
            self.counts["lost"] += 1
            self.samplers[sender].mark_misbehaving(self.ids[j][0])
            return
        self.received[j] += ann.size
        if self.inboxes[j].offer(ann):
            self.inboxes[j].deliver(payload)

    def _churn(self) -> None:
        """At a round boundary: some online peers leave, some offline ones come back."""
        leaving = self.online & (self.rng.random(self.config.peers) < self.config.churn)
        returning = ~self.online & (self.rng.random(self.config.peers) < self.config.rejoin)
        for i in np.flatnonzero(leaving):
            self.online[i] = False
            self.generation[i] += 1  # its round in progress is lost
        for i in np.flatnonzero(returning):
            self.online[i] = True
            self._schedule_round(int(i))

    # --- measures ---------------------------------------------------------------------

    def _accuracies(self) -> np.ndarray:
        return np.array([learner.trainer.evaluate(self.test) for learner in self.learners])

    def _disagreement(self) -> float:
        n = self.config.peers
        pairs = [tuple(self.rng.choice(n, 2, replace=False)) for _ in range(self.config.pairs)]
        flats: dict[int, torch.Tensor] = {}
        for a, b in pairs:
            for p in (a, b):
                if p not in flats:
                    flats[p] = _flat(self.learners[p])
        return float(np.mean([float(torch.linalg.vector_norm(flats[a] - flats[b])) for a, b in pairs]))

    # --- the run ----------------------------------------------------------------------

    def run(self, on_tick: Callable[[int, float], None] | None = None) -> RunResult:
        started = time.perf_counter()
        config = self.config
        for i in range(config.peers):
            self._schedule_round(i)
        for tick in range(1, config.rounds + 1):
            self._push(tick * config.round_seconds, "tick", -1, tick)
        series: dict[str, list] = {k: [] for k in ("ticks", "mean", "p10", "p90", "min", "max", "l2", "online")}
        while self._queue:
            at, _, kind, peer, data = heapq.heappop(self._queue)
            self.now = at
            if kind == "round":
                if self.online[peer] and data == self.generation[peer]:
                    self._round(peer)
            elif kind == "arrive":
                self._arrive(peer, data)  # type: ignore[arg-type]
            else:
                tick = int(data)  # type: ignore[call-overload]
                if tick % config.eval_every == 0 or tick == config.rounds:
                    acc = self._accuracies()
                    for name, value in (("ticks", tick), ("mean", float(acc.mean())), ("min", float(acc.min())),
                                        ("max", float(acc.max())), ("p10", float(np.percentile(acc, 10))),
                                        ("p90", float(np.percentile(acc, 90))), ("l2", self._disagreement()),
                                        ("online", int(self.online.sum()))):
                        series[name].append(value)
                    if on_tick is not None:
                        on_tick(tick, float(acc.mean()))
                if tick == config.rounds:
                    break
                self._churn()
        peer_rounds = config.peers * config.rounds
        return RunResult(
            config=config, ticks=series["ticks"], accuracy_mean=series["mean"], accuracy_p10=series["p10"],
            accuracy_p90=series["p90"], accuracy_min=series["min"], accuracy_max=series["max"],
            disagreement_l2=series["l2"], online=series["online"],
            bytes_sent_per_peer_round=float(self.sent.sum() / peer_rounds),
            bytes_received_per_peer_round=float(self.received.sum() / peer_rounds),
            payload_bytes_mean=float(np.mean(self.payload_sizes)) if self.payload_sizes else 0.0,
            trained_rounds=self.samples_count, merged_updates=self.counts["merged"],
            clipped=self.counts["clipped"], refused=self.counts["refused"], lost_messages=self.counts["lost"],
            share_mean=float(np.mean(self.shares)) if self.shares else 0.0,
            wall_seconds=time.perf_counter() - started,
        )


def centralised_curve(shards: list[ImageSet], test: ImageSet, config: SimConfig) -> list[float]:
    """`node.baselines.centralised_curve` with the linear model: the pooled shards,
    N x E steps per round, the same trainer and hyper-parameters, accuracy per round."""
    from node.baselines import pool

    trainer = LocalTrainer(
        linear_model(0), pool(shards), seed=config.seed, lr=config.lr, batch_size=config.batch_size, holdout_fraction=0.0
    )
    curve = []
    for _ in range(config.rounds):
        trainer.train(config.local_steps * len(shards))
        curve.append(trainer.evaluate(test))
    return curve
