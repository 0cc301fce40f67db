"""The two references gossip learning is judged against, at the same step budget.

- centralised: one model trained on the pooled data of all peers, `len(peers) * E`
  local steps per round (the total steps all peers take in a round);
- isolated: each peer trains alone, E steps per round, never merging.

Both use the same model, trainer and hyper-parameters as the peers (`node.learner`), and
are evaluated on the same common test set after every round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from node.data import ImageSet
from node.learner import Learner, LearnerSettings


def pool(sets: Sequence[ImageSet]) -> ImageSet:
    """All peers' images as one set (what a central server would hold)."""
    return ImageSet(
        images=np.concatenate([s.images for s in sets]),
        labels=np.concatenate([s.labels for s in sets]),
        subjects=tuple(subject for s in sets for subject in s.subjects),
    )


def centralised_curve(
    settings: LearnerSettings,
    sets: Sequence[ImageSet],
    test: ImageSet,
    rounds: int,
    on_round: Callable[[int], None] | None = None,
) -> list[float]:
    """Accuracy on `test` after each round of pooled training."""
    learner = Learner(
        replace(settings, local_steps=settings.local_steps * len(sets)), pool(sets), test
    )
    curve = []
    for round_ in range(1, rounds + 1):
        learner.trainer.train(learner.settings.local_steps, frozenset())
        curve.append(learner.trainer.evaluate(test))
        if on_round is not None:
            on_round(round_)
    return curve


def isolated_curves(
    settings: LearnerSettings,
    sets: Sequence[ImageSet],
    test: ImageSet,
    rounds: int,
    on_round: Callable[[int], None] | None = None,
) -> list[list[float]]:
    """Per peer, accuracy on `test` after each round of training alone."""
    learners = [
        Learner(replace(settings, seed=settings.seed + i), images, test) for i, images in enumerate(sets)
    ]
    curves: list[list[float]] = [[] for _ in learners]
    for round_ in range(1, rounds + 1):
        for curve, learner in zip(curves, learners):
            learner.trainer.train(settings.local_steps, frozenset())
            curve.append(learner.trainer.evaluate(test))
        if on_round is not None:
            on_round(round_)
    return curves
