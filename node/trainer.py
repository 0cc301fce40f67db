"""Local training on the consented images of one site, optionally with DP-SGD.

``LocalTrainer`` owns one model and one ``ImageSet`` (``node.data``). On construction it
splits the images *by subject* into a training part and a held-out part (deterministic
under ``seed``; one patient is never on both sides). ``train(steps, withdrawn)`` first
drops every image of a withdrawn subject commitment (from both parts, for good), then
runs ``steps`` SGD steps and returns a ``TrainReport`` with what the ledger records:
distinct samples used, the commitments of the subjects used, and the epsilon spent.

Batches: without DP, ``batch_size`` images drawn without replacement per step; with DP,
Poisson sampling (each consented image independently with rate batch_size / N), which
is what the opacus accountants assume. An empty Poisson batch still takes a step (noise
only) and is still accounted.

Determinism: batches (and DP noise when ``DPConfig.noise_seed`` is set) come from
generators seeded with (seed, round index), so the same trainer arguments, model and
call sequence give bit-identical weights; ``torch.set_num_threads(1)`` by default.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from node.errors import NoTrainingData, TrainingError
from node.privacy import AccountantState, DPConfig, PrivacyAccountant, make_private

__all__ = ["BatchInfo", "ImageSetLike", "LocalTrainer", "TrainReport"]

_EVAL_CHUNK = 512


class ImageSetLike(Protocol):
    """The shape of ``node.data.ImageSet``."""

    images: np.ndarray  # float32 [N, 1, S, S]
    labels: np.ndarray  # int64 [N]
    subjects: tuple[bytes, ...]  # subject commitment per image


@dataclass(frozen=True)
class TrainReport:
    """One round of local training, as recorded on chain."""

    steps: int
    sample_count: int  # distinct images used this round
    subjects_used: tuple[bytes, ...]  # sorted commitments of the subjects used
    loss: float  # mean training loss over the round's non-empty batches (nan if none)
    epsilon_round: float  # epsilon spent by this round (0.0 without DP)
    epsilon_total: float  # lifetime epsilon after this round (0.0 without DP)


@dataclass(frozen=True)
class BatchInfo:
    """What one training step saw (for audits and tests; never logged)."""

    round: int
    step: int
    indices: tuple[int, ...]  # positions in the trainer's ImageSet
    subjects: tuple[bytes, ...]


def _seed_for(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class LocalTrainer:
    """E local SGD steps on the consented training split; evaluation on the held-out one."""

    def __init__(
        self,
        model: nn.Module,
        images: ImageSetLike,
        *,
        seed: int = 0,
        lr: float = 0.05,
        batch_size: int = 32,
        holdout_fraction: float = 0.2,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        dp: DPConfig | None = None,
        accountant_state: AccountantState | None = None,
        on_batch: Callable[[BatchInfo], None] | None = None,
        num_threads: int | None = 1,
    ) -> None:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        n = len(images.labels)
        if images.images.shape[0] != n or len(images.subjects) != n:
            raise TrainingError("ImageSet images, labels and subjects differ in length")
        if batch_size < 1 or lr <= 0 or not (0.0 <= holdout_fraction < 1.0):
            raise TrainingError("need batch_size >= 1, lr > 0 and holdout_fraction in [0, 1)")
        self.model = model
        self.seed = seed
        self.batch_size = batch_size
        self.dp = dp
        self.on_batch = on_batch
        self.rounds_done = 0
        self._x = torch.as_tensor(np.ascontiguousarray(images.images, dtype=np.float32))
        self._y = torch.as_tensor(np.asarray(images.labels, dtype=np.int64))
        self._subjects = tuple(bytes(s) for s in images.subjects)
        self._withdrawn: set[bytes] = set()
        self._train_idx, self._holdout_idx = self._split(holdout_fraction)
        self._optimizer = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
        self._step_module: nn.Module = model
        self._dp_optimizer = None
        self.accountant: PrivacyAccountant | None = None
        if dp is not None:
            self._step_module, self._dp_optimizer = make_private(
                model, self._optimizer, dp, expected_batch_size=batch_size
            )
            if accountant_state is not None:
                if accountant_state.mechanism != dp.accountant:
                    raise TrainingError(
                        f"saved accountant is {accountant_state.mechanism!r}, config says {dp.accountant!r}"
                    )
                self.accountant = PrivacyAccountant.from_state(accountant_state, dp.delta)
            else:
                self.accountant = PrivacyAccountant(dp.accountant, dp.delta)
        elif accountant_state is not None:
            raise TrainingError("an accountant state was given but DP is off")

    # --- data ---------------------------------------------------------------------------

    def _split(self, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        unique = sorted(set(self._subjects))
        rng = np.random.default_rng(_seed_for(self.seed, 0x5EED))
        order = rng.permutation(len(unique))
        n_hold = int(round(fraction * len(unique)))
        if fraction > 0 and len(unique) >= 2:
            n_hold = min(max(n_hold, 1), len(unique) - 1)
        held = {unique[i] for i in order[:n_hold]}
        is_held = np.array([s in held for s in self._subjects], dtype=bool)
        all_idx = np.arange(len(self._subjects))
        return all_idx[~is_held], all_idx[is_held]

    def exclude(self, withdrawn: Iterable[bytes]) -> int:
        """Drop every image of these subject commitments (training and held-out), for good.

        Returns how many images were dropped by this call.
        """
        new = {bytes(c) for c in withdrawn} - self._withdrawn
        if not new:
            return 0
        self._withdrawn |= new
        before = len(self._train_idx) + len(self._holdout_idx)
        keep = np.array([s not in self._withdrawn for s in self._subjects], dtype=bool)
        self._train_idx = self._train_idx[keep[self._train_idx]]
        self._holdout_idx = self._holdout_idx[keep[self._holdout_idx]]
        return before - len(self._train_idx) - len(self._holdout_idx)

    @property
    def withdrawn(self) -> frozenset[bytes]:
        return frozenset(self._withdrawn)

    @property
    def train_size(self) -> int:
        return len(self._train_idx)

    @property
    def holdout_size(self) -> int:
        return len(self._holdout_idx)

    @property
    def train_subjects(self) -> tuple[bytes, ...]:
        """Sorted commitments of the consented training subjects."""
        return tuple(sorted({self._subjects[i] for i in self._train_idx}))

    # --- weights ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Tensor]:
        """The plain model's weights (never the ``_module.``-prefixed DP wrapper's)."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Replace the weights (e.g. after a merge); optimizer momentum is kept."""
        self.model.load_state_dict(dict(state), strict=True)

    @property
    def epsilon_total(self) -> float:
        return self.accountant.epsilon() if self.accountant is not None else 0.0

    def epsilon_after_round(self, steps: int) -> float:
        """The lifetime epsilon after `steps` more DP steps on today's consented pool,
        computed without taking them (0.0 without DP). Equals what `train(steps)` will
        report unless a withdrawal shrinks the pool during the round (a higher rate)."""
        if self.accountant is None or self.dp is None:
            return 0.0
        if len(self._train_idx) == 0:
            return self.epsilon_total  # no step can be taken: train() will refuse
        rate = min(1.0, self.batch_size / len(self._train_idx))
        return self.accountant.epsilon_after(self.dp.noise_multiplier, rate, steps)

    # --- training -----------------------------------------------------------------------

    def train(self, steps: int, withdrawn: Iterable[bytes] = frozenset()) -> TrainReport:
        """Exclude ``withdrawn`` subjects, then run ``steps`` local SGD steps.

        The consented pool is re-read before every step, so a withdrawal applied by
        another thread through :meth:`exclude` takes effect at the next step, not the
        next round.
        """
        if steps < 0:
            raise TrainingError(f"steps must be >= 0, got {steps}")
        self.exclude(withdrawn)
        if steps > 0 and len(self._train_idx) == 0:
            raise NoTrainingData("no consented training image left")
        round_index = self.rounds_done
        generator = torch.Generator().manual_seed(_seed_for(self.seed, round_index, 1))
        if self._dp_optimizer is not None and self.dp is not None and self.dp.noise_seed is not None:
            self._dp_optimizer.generator = torch.Generator().manual_seed(
                _seed_for(self.dp.noise_seed, round_index, 2)
            )
        eps_before = self.epsilon_total
        used: set[int] = set()
        losses: list[float] = []
        self.model.train()
        for step in range(steps):
            pool = self._train_idx  # replaced (never mutated) by exclude(): a consistent snapshot
            if len(pool) == 0:
                raise NoTrainingData("no consented training image left")
            if self._dp_optimizer is None:
                take = torch.randperm(len(pool), generator=generator)[: self.batch_size]
            else:
                rate = min(1.0, self.batch_size / len(pool))
                take = torch.nonzero(torch.rand(len(pool), generator=generator) < rate).flatten()
            batch = pool[take.numpy()]
            if self.on_batch is not None:
                self.on_batch(
                    BatchInfo(
                        round=round_index,
                        step=step,
                        indices=tuple(int(i) for i in batch),
                        subjects=tuple(self._subjects[int(i)] for i in batch),
                    )
                )
            used.update(int(i) for i in batch)
            loss = self._step(torch.as_tensor(batch, dtype=torch.long), len(pool))
            if loss is not None:
                losses.append(loss)
        self.rounds_done += 1
        eps_total = self.epsilon_total
        return TrainReport(
            steps=steps,
            sample_count=len(used),
            subjects_used=tuple(sorted({self._subjects[i] for i in used})),
            loss=float(np.mean(losses)) if losses else float("nan"),
            epsilon_round=eps_total - eps_before,
            epsilon_total=eps_total,
        )

    def _step(self, batch: Tensor, pool_size: int) -> float | None:
        if self._dp_optimizer is None:
            self._optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(self.model(self._x[batch]), self._y[batch])
            loss.backward()
            self._optimizer.step()
            return float(loss.detach())
        dp, opt, accountant = self.dp, self._dp_optimizer, self.accountant
        if dp is None or accountant is None:  # pragma: no cover - set together in __init__
            raise TrainingError("DP state is inconsistent")
        rate = min(1.0, self.batch_size / pool_size)
        opt.expected_batch_size = max(1, round(rate * pool_size))
        opt.zero_grad(set_to_none=True)
        result: float | None = None
        if len(batch) == 0:
            # An empty Poisson batch: opacus would skip the noise; DP-SGD still takes
            # the step with noise only, and the accountant still counts it.
            std = dp.noise_multiplier * dp.max_grad_norm
            for p in self.model.parameters():
                if p.requires_grad:
                    noise = torch.normal(0.0, std, p.shape, generator=opt.generator)
                    p.grad = noise / opt.expected_batch_size
            self._optimizer.step()
        else:
            loss = nn.functional.cross_entropy(self._step_module(self._x[batch]), self._y[batch])
            with warnings.catch_warnings():
                # opacus' per-sample hooks fire on the first layer, whose input needs no
                # gradient; torch warns about that on every step. Expected, not a problem.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            opt.step()
            result = float(loss.detach())
        opt.zero_grad(set_to_none=True)
        accountant.step(dp.noise_multiplier, rate)
        return result

    # --- evaluation ---------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, images: ImageSetLike | None = None) -> float:
        """Accuracy on the local held-out split, or on ``images`` (nan when empty)."""
        if images is None:
            x, y = self._x[self._holdout_idx], self._y[self._holdout_idx]
        else:
            x = torch.as_tensor(np.ascontiguousarray(images.images, dtype=np.float32))
            y = torch.as_tensor(np.asarray(images.labels, dtype=np.int64))
        if len(y) == 0:
            return float("nan")
        was_training = self.model.training
        self.model.eval()
        correct = 0
        for start in range(0, len(y), _EVAL_CHUNK):
            logits = self.model(x[start : start + _EVAL_CHUNK])
            correct += int((logits.argmax(dim=1) == y[start : start + _EVAL_CHUNK]).sum())
        self.model.train(was_training)
        return correct / len(y)
