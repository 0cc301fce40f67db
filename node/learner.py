"""One peer's learning, without the network or the chain.

`Learner` owns the model, the local trainer, the delta encoder and the merge rule. A
round is two calls: `train_round` (E local steps -> an encoded contribution) and
`merge` (own update + verified peers' payloads -> the next model). The peer process
(`node.peer`) wraps these in its network and chain I/O; `bench/learning.py` drives the
same calls in-process. Everything here is synchronous: the peer runs it in a worker
thread.

A delta is "new state minus the state the round started from". Peers' updates are
applied to our own round-start state (asynchronous SGD across peers), weighted by the
sample count their authors recorded on chain over a normaliser that every peer computes
the same way (see `Learner.merge`): every update counts once, with the same weight,
whichever round a peer happens to merge it in, so peers that merge every update agree
on the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from node.codec import CodecSpec, DeltaEncoder, apply_delta, decode_delta
from node.data import ImageSet
from node.errors import CodecError
from node.aggregate import clip_norm, is_finite, l2_norm
from node.merge import Update, strategy_from_name
from node.merkle import data_root
from node.models import build_model, state_hash
from node.privacy import AccountantState, DPConfig, PrivacyAccountant
from node.trainer import LocalTrainer

StateDict = dict[str, Tensor]

log = logging.getLogger("medgossip.learner")


@dataclass(frozen=True)
class LearnerSettings:
    """The learning part of a peer's configuration."""

    model: str = "small-cnn"
    image_size: int = 8
    num_classes: int = 10
    genesis_seed: int = 0
    seed: int = 0
    local_steps: int = 10
    batch_size: int = 32
    lr: float = 0.05
    merge: str = "mean"
    norm_bound: float = 1.0
    """an incoming update whose L2 norm is over norm_bound x its reference norm
    (`PeerPayload.reference_norm`) is clipped to that norm; 0 turns the bound off."""
    norm_refuse: float = 5.0
    """an incoming update whose L2 norm is over norm_refuse x its reference norm is
    refused (not merged, counted); 0 turns refusal off."""
    codec: str = "fp32"
    topk_fraction: float = 0.1
    holdout_fraction: float = 0.2
    dp: DPConfig | None = None


@dataclass(frozen=True)
class Contribution:
    """Our encoded delta of one round and what goes on chain about it."""

    round: int
    payload: bytes
    delta_hash: bytes
    base_hash: bytes
    sample_count: int
    data_root: bytes
    subjects: tuple[bytes, ...]
    """commitments of the subjects whose images were used (stays local: audit trail)."""
    epsilon: float
    loss: float
    train_seconds: float


@dataclass(frozen=True)
class PeerPayload:
    """A peer's payload, fetched and its hash verified against the chain."""

    source: str
    delta_hash: bytes
    payload: bytes
    sample_count: int
    """the merge weight: the count recorded on chain, capped by the author's cap."""
    author: str = ""
    """the recording node's address, as on chain; the payload's header must name it."""
    round: int = 0
    """the round recorded on chain; the payload's header must name it."""
    reference_norm: float = 0.0
    """the norm the bounds are multiples of: the same on every peer (node.peer.norms);
    0 means no bound."""


@dataclass(frozen=True)
class Network:
    """What the chain says about the whole network, the same on every peer."""

    nodes: int
    """registered, active nodes."""
    mean_samples: float
    """mean (capped) sample count of the contributions recorded so far."""

    @property
    def weight(self) -> float:
        return self.nodes * self.mean_samples


@dataclass(frozen=True)
class MergeOutcome:
    merged: tuple[bytes, ...]
    """delta hashes of the peers' payloads that went into the merge."""
    rejected: tuple[tuple[bytes, str], ...]
    """(delta hash, reason) of payloads that did not decode against our model."""
    share: float = 1.0
    """the merged updates' weight over the network's weight: the aggregate's scale."""
    clipped: tuple[bytes, ...] = ()
    """delta hashes of the merged payloads whose norm was clipped to the bound."""
    over_norm: tuple[tuple[bytes, str], ...] = ()
    """(delta hash, reason) of payloads refused for a norm over `norm_refuse` x their reference."""

class Learner:
    """Model + trainer + codec + merge rule of one peer."""

    def __init__(
        self,
        settings: LearnerSettings,
        images: ImageSet,
        eval_images: ImageSet | None = None,
    ) -> None:
        self.settings = settings
        model = build_model(
            settings.model,
            num_classes=settings.num_classes,
            in_size=settings.image_size,
            seed=settings.genesis_seed,
        )
        self.genesis_hash = state_hash(model.state_dict())
        self.trainer = LocalTrainer(
            model,
            images,
            seed=settings.seed,
            lr=settings.lr,
            batch_size=settings.batch_size,
            holdout_fraction=settings.holdout_fraction,
            dp=settings.dp,
        )
        self.encoder = DeltaEncoder(
            CodecSpec(settings.codec, settings.topk_fraction), model_id=settings.model
        )
        self.author: str = ""
        """the recording node's address, written into every payload header (set it before
        `train_round`: encoding refuses an empty author)."""
        self.strategy = strategy_from_name(settings.merge)
        self.eval_images = eval_images
        self.base_state: StateDict = self.state()

    # --- state ----------------------------------------------------------------------

    def state(self) -> StateDict:
        return self.trainer.state_dict()

    def load_state(self, state: Mapping[str, Tensor]) -> None:
        self.trainer.load_state_dict(state)

    def privacy_state(self) -> dict[str, Any] | None:
        """The DP accountant's history as plain data (None without DP), for checkpoints."""
        accountant = self.trainer.accountant
        return None if accountant is None else accountant.state().to_dict()

    def load_privacy_state(self, data: Mapping[str, Any] | None) -> None:
        if data is None or self.settings.dp is None:
            return
        self.trainer.accountant = PrivacyAccountant.from_state(
            AccountantState.from_dict(data), self.settings.dp.delta
        )

    # --- a round --------------------------------------------------------------------

    def train_round(self, round_: int, withdrawn: Collection[bytes]) -> Contribution:
        """E local steps from the current model, then encode the delta; with a lossy
        codec the model is then set to the round's base plus the decoded payload."""
        self.base_state = self.state()
        base_hash = state_hash(self.base_state)
        started = time.perf_counter()
        report = self.trainer.train(self.settings.local_steps, withdrawn)
        train_seconds = time.perf_counter() - started
        if not is_finite(self.state()):
            # Training diverged (e.g. from a model that merged a poisoned update: a peer
            # with the norm bound off): roll the round back, send a zero update, and let
            # later merges repair the model, rather than stop the peer on an
            # unencodable delta, at once and again after every restart.
            log.warning("round %d: local training diverged (non-finite weights): rolled back", round_)
            self.load_state(self.base_state)
        encoded = self.encoder.encode(
            self.state(), self.base_state, base_hash, author=self.author, round=round_
        )
        if not self.encoder.spec.codec.exact:
            # Our step is what our peers receive, not the full-precision delta: peers that
            # merge the same payloads then hold the same model. What the codec left out
            # stays in its error feedback, and goes out in a later round.
            sent = decode_delta(encoded.payload, self.base_state, model_id=self.settings.model)
            self.load_state(apply_delta(self.base_state, sent.tensors))
        return Contribution(
            round=round_,
            payload=encoded.payload,
            delta_hash=encoded.delta_hash,
            base_hash=base_hash,
            sample_count=report.sample_count,
            data_root=data_root(report.subjects_used),
            subjects=report.subjects_used,
            epsilon=report.epsilon_round,
            loss=report.loss,
            train_seconds=train_seconds,
        )

    def merge(self, own_weight: int, peers: Sequence[PeerPayload], network: Network | None = None) -> MergeOutcome:
        """Merge our own update with the peers' into the next model.

        Each update's weight is its sample count as recorded on chain, capped by its
        author's cap (`PeerPayload.sample_count`, capped by the chain view). The rule
        aggregates the updates at hand; the step taken is that aggregate times the share
        of the network they stand for:
        - `mean` (weighted): `sum(weights) / network.weight`. Each update `u_j` then adds
          exactly `n_j / (N * mean) * u_j`, whichever round it is merged in and whatever
          else is merged with it, so peers that merge every update once end at (nearly)
          the same model (addition commutes), without a barrier;
        - robust rules: `len(updates) / network.nodes`, never self-declared counts.
        None means "these updates are the whole network" (scale 1).

        Our own update takes part when we trained (`own_weight > 0`); a late merge (no
        training) merges the peers' updates alone. Before the rule runs, a peer update
        whose L2 norm is over `norm_bound` x its reference norm (the median norm of the
        records around it on chain, the same on every peer: `node.peer.norms`) is
        clipped to that norm, so no single update moves the model further than an
        honest one; one over `norm_refuse` x it is refused (`over_norm`). A merge that
        would make the model non-finite is not applied (the peers' updates are reported
        rejected; we keep our own step). A payload whose header does not
        name this network's model, or the author and round of its chain record, or that
        does not decode against our model, is rejected and reported, never raised: one
        bad peer must not stop the round.
        """
        own_state = self.state()
        own_delta = {
            k: own_state[k].float() - self.base_state[k].float()
            for k in own_state
            if own_state[k].is_floating_point()
        }
        own = [Update(own_delta, float(own_weight), "self")] if own_weight > 0 else []
        updates = list(own)
        merged: list[bytes] = []
        clipped: list[bytes] = []
        rejected: list[tuple[bytes, str]] = []
        over_norm: list[tuple[bytes, str]] = []
        for peer in peers:
            try:
                decoded = decode_delta(
                    peer.payload, self.base_state, model_id=self.settings.model,
                    author=peer.author or None, round=peer.round or None,
                )
            except CodecError as exc:
                rejected.append((peer.delta_hash, str(exc)))
                continue
            tensors = decoded.tensors
            bound, refuse = (self.settings.norm_bound * peer.reference_norm, self.settings.norm_refuse * peer.reference_norm)
            if refuse > 0 and (norm := l2_norm(tensors)) > refuse:
                over_norm.append((peer.delta_hash, f"update norm {norm:.3g} is over {self.settings.norm_refuse:g}x "
                                  f"its reference norm ({peer.reference_norm:.3g})"))
                continue
            merged.append(peer.delta_hash)
            if bound > 0:
                tensors, was_clipped = clip_norm(tensors, bound)
                if was_clipped:
                    clipped.append(peer.delta_hash)
            updates.append(Update(tensors, float(max(peer.sample_count, 1)), peer.source))
        if not updates:
            return MergeOutcome(tuple(merged), tuple(rejected), 0.0, over_norm=tuple(over_norm))
        share = self._share(updates, network)
        merged_state = apply_delta(self.base_state, self.strategy.merge(updates), scale=share)
        if not is_finite(merged_state):
            reason = "the merge would make the model non-finite"
            rejected += [(h, reason) for h in merged]
            merged_state = apply_delta(self.base_state, own_delta, scale=self._share(own, network)) if own else self.base_state
            merged, clipped = [], []
        self.load_state(merged_state)
        return MergeOutcome(tuple(merged), tuple(rejected), share, tuple(clipped), tuple(over_norm))

    def _share(self, updates: Sequence[Update], network: Network | None) -> float:
        """The step's scale: the share of the network these updates stand for."""
        if network is None:
            return 1.0
        if self.strategy.weighted:
            return sum(u.weight for u in updates) / network.weight
        return len(updates) / max(network.nodes, 1)

    def payload_norm(self, payload: bytes, author: str | None = None, round_: int | None = None) -> float:
        """The L2 norm of a payload's update (a property of its bytes, the same on every
        peer). Raises CodecError when it does not decode against our model, or its
        header does not name `author` and `round_` (its chain record's), when given."""
        decoded = decode_delta(payload, self.base_state, model_id=self.settings.model, author=author, round=round_)
        return l2_norm(decoded.tensors)

    # --- evaluation -----------------------------------------------------------------

    def evaluate(self) -> tuple[float, float | None]:
        """Accuracy on the local held-out split, and on the common eval set if any."""
        local = self.trainer.evaluate()
        common = self.trainer.evaluate(self.eval_images) if self.eval_images is not None else None
        return local, common


__all__ = [
    "Learner",
    "LearnerSettings",
    "Contribution",
    "PeerPayload",
    "MergeOutcome",
    "Network",
]
