"""Learner: one round of the peer's learning, and why peers agree on the model.

Each update is merged with the weight n_j / network_weight whatever it is merged with,
so a peer that merges a set of updates at once and a peer that merges the same updates
one by one (late) end at the same model: addition commutes.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from node.codec import decode_delta
from node.learner import Learner, LearnerSettings, PeerPayload
from node.merkle import merkle_root
from tests.node.learning_data import digits_image_set

SETTINGS = LearnerSettings(local_steps=3, batch_size=16, lr=0.1)


def payload_of(learner: Learner, name: str) -> PeerPayload:
    c = learner.train_round(1, frozenset())
    return PeerPayload(name, c.delta_hash, c.payload, c.sample_count)


def test_train_round_encodes_the_delta_and_commits_to_the_subjects_used() -> None:
    learner = Learner(SETTINGS, digits_image_set(300))
    start = learner.state()

    c = learner.train_round(1, frozenset())

    decoded = decode_delta(c.payload, start)
    after = learner.state()
    for name, delta in decoded.tensors.items():
        assert torch.allclose(start[name] + delta, after[name], atol=1e-6)
    assert c.data_root == merkle_root(c.subjects) and c.subjects
    assert 0 < c.sample_count <= SETTINGS.local_steps * SETTINGS.batch_size


def test_merging_at_once_or_one_by_one_gives_the_same_model() -> None:
    images = digits_image_set(300)
    peer_p = payload_of(Learner(replace(SETTINGS, seed=1), images), "p")
    peer_q = payload_of(Learner(replace(SETTINGS, seed=2), images), "q")
    at_once, one_by_one = Learner(SETTINGS, images), Learner(SETTINGS, images)
    own = at_once.train_round(1, frozenset())
    one_by_one.train_round(1, frozenset())
    network_weight = 3 * 40.0

    at_once.merge(own.sample_count, [peer_p, peer_q], network_weight)
    one_by_one.merge(own.sample_count, [peer_p], network_weight)
    one_by_one.base_state = one_by_one.state()  # a late merge: no training, own update zero
    one_by_one.merge(0, [peer_q], network_weight)

    a, b = at_once.state(), one_by_one.state()
    # the zero own update of the late merge carries weight 1 (the floor): tiny, not zero
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_a_payload_that_does_not_decode_is_rejected_not_raised() -> None:
    images = digits_image_set(300)
    learner = Learner(SETTINGS, images)
    own = learner.train_round(1, frozenset())
    bad = PeerPayload("liar", b"\x01" * 32, b"not a safetensors payload", 10)

    outcome = learner.merge(own.sample_count, [bad], 100.0)

    assert outcome.merged == () and [h for h, _ in outcome.rejected] == [b"\x01" * 32]
