"""Learner: one round of the peer's learning, and why peers agree on the model.

Each update is merged with the weight n_j / network_weight whatever it is merged with,
so a peer that merges a set of updates at once and a peer that merges the same updates
one by one (late) end at the same model: addition commutes.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from node.codec import decode_delta
from node.errors import CodecError, EncodingError
from node.learner import Contribution, Learner, LearnerSettings, Network, PeerPayload
from node.merkle import data_root
from tests.node.learning_data import digits_image_set

SETTINGS = LearnerSettings(local_steps=3, batch_size=16, lr=0.1)
AUTHOR = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"


def payload_of(learner: Learner, name: str) -> PeerPayload:
    learner.author = AUTHOR
    c = learner.train_round(1, frozenset())
    return PeerPayload(name, c.delta_hash, c.payload, c.sample_count)


def test_train_round_encodes_the_delta_and_commits_to_the_subjects_used() -> None:
    learner = Learner(SETTINGS, digits_image_set(300))
    learner.author = AUTHOR.lower()
    start = learner.state()

    c = learner.train_round(3, frozenset())

    decoded = decode_delta(c.payload, start, author=AUTHOR, round=3)
    assert (decoded.header.author, decoded.header.round, c.round) == (AUTHOR, 3, 3)
    after = learner.state()
    for name, delta in decoded.tensors.items():
        assert torch.allclose(start[name] + delta, after[name], atol=1e-6)
    assert c.data_root == data_root(c.subjects) and c.subjects
    assert 0 < c.sample_count <= SETTINGS.local_steps * SETTINGS.batch_size


def test_merging_at_once_or_one_by_one_gives_the_same_model() -> None:
    images = digits_image_set(300)
    peer_p = payload_of(Learner(replace(SETTINGS, seed=1), images), "p")
    peer_q = payload_of(Learner(replace(SETTINGS, seed=2), images), "q")
    at_once, one_by_one = Learner(SETTINGS, images), Learner(SETTINGS, images)
    at_once.author = one_by_one.author = AUTHOR
    own = at_once.train_round(1, frozenset())
    one_by_one.train_round(1, frozenset())
    network = Network(nodes=3, mean_samples=40.0)

    at_once.merge(own.sample_count, [peer_p, peer_q], network)
    one_by_one.merge(own.sample_count, [peer_p], network)
    one_by_one.base_state = one_by_one.state()  # a late merge: no training, own update zero
    one_by_one.merge(0, [peer_q], network)

    a, b = at_once.state(), one_by_one.state()
    # the zero own update of the late merge carries weight 1 (the floor): tiny, not zero
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_a_payload_that_does_not_decode_is_rejected_not_raised() -> None:
    images = digits_image_set(300)
    learner = Learner(SETTINGS, images)
    learner.author = AUTHOR
    own = learner.train_round(1, frozenset())
    bad = PeerPayload("liar", b"\x01" * 32, b"not a safetensors payload", 10)

    outcome = learner.merge(own.sample_count, [bad], Network(nodes=2, mean_samples=50.0))

    assert outcome.merged == () and [h for h, _ in outcome.rejected] == [b"\x01" * 32]


def test_train_round_refuses_to_encode_without_an_author() -> None:
    learner = Learner(SETTINGS, digits_image_set(300))

    with pytest.raises(EncodingError, match="author is empty"):
        learner.train_round(1, frozenset())


def test_a_round_whose_training_diverges_is_rolled_back_not_raised() -> None:
    """A model that merged poison (norm bound off) can make local training blow up to
    NaN: the peer must go on (a zero update), not stop on an unencodable delta."""
    learner = Learner(SETTINGS, digits_image_set(300))
    learner.author = AUTHOR
    wrecked = {k: v * 1e30 if v.is_floating_point() else v for k, v in learner.state().items()}
    learner.load_state(wrecked)

    c = learner.train_round(1, frozenset())

    assert all(torch.equal(learner.state()[k], wrecked[k]) for k in wrecked)
    decoded = decode_delta(c.payload, wrecked, author=AUTHOR, round=1)
    assert all(not bool(t.any()) for t in decoded.tensors.values())


def poisoned(learner: Learner, honest: PeerPayload, factor: float, name: str = "byzantine") -> PeerPayload:
    """An honest payload's delta scaled by `factor`, encoded as a decodable payload."""
    base = learner.base_state
    delta = decode_delta(honest.payload, base).tensors
    new = {k: base[k] + factor * delta[k] if k in delta else base[k] for k in base}
    encoded = learner.encoder.encode(new, base, decode_delta(honest.payload, base).header.base_hash, author=AUTHOR, round=1)
    return PeerPayload(name, encoded.delta_hash, encoded.payload, honest.sample_count, AUTHOR, 1)


def honest_and_victim(settings: LearnerSettings = SETTINGS) -> tuple[PeerPayload, Learner, Contribution]:
    """An honest peer's payload, and a learner that trained its own round 1 (not merged)."""
    images = digits_image_set(300)
    honest = payload_of(Learner(replace(SETTINGS, seed=1), images), "h")
    victim = Learner(settings, images)
    victim.author = AUTHOR
    return honest, victim, victim.train_round(1, frozenset())


def test_an_update_over_its_reference_norm_is_clipped_and_far_over_it_refused() -> None:
    honest, victim, own = honest_and_victim()
    start = victim.base_state
    honest_norm = victim.payload_norm(honest.payload)
    network = Network(nodes=2, mean_samples=float(own.sample_count))
    boosted = replace(poisoned(victim, honest, factor=3.0, name="boosted"), reference_norm=honest_norm)
    flipped = replace(poisoned(victim, honest, factor=-10.0, name="flipped"), reference_norm=honest_norm)

    outcome = victim.merge(own.sample_count, [boosted, flipped], network)

    moved = sum(float(torch.sum((victim.state()[k] - start[k]) ** 2)) for k in start if start[k].is_floating_point()) ** 0.5
    assert outcome.merged == (boosted.delta_hash,) and outcome.clipped == (boosted.delta_hash,)
    assert [h for h, _ in outcome.over_norm] == [flipped.delta_hash]
    assert "over 5x its reference norm" in outcome.over_norm[0][1]
    assert moved < 2.0 * honest_norm  # the x3 update counts as a x1, the x10 not at all


def test_without_a_reference_norm_nothing_is_clipped_or_refused() -> None:
    honest, victim, own = honest_and_victim()
    boosted = poisoned(victim, honest, factor=10.0)  # reference_norm 0: no bound (defences off)

    outcome = victim.merge(own.sample_count, [boosted], Network(nodes=2, mean_samples=float(own.sample_count)))

    assert outcome.merged == (boosted.delta_hash,) and outcome.clipped == () and outcome.over_norm == ()


def test_a_header_that_does_not_match_the_chain_record_is_rejected() -> None:
    honest, victim, own = honest_and_victim()
    other = "0x" + "ab" * 20
    wrong_author = replace(honest, author=other, round=1)
    wrong_round = replace(honest, author=AUTHOR, round=2)

    outcome = victim.merge(own.sample_count, [wrong_author, wrong_round], None)

    assert outcome.merged == () and len(outcome.rejected) == 2
    assert "author" in outcome.rejected[0][1] and "round" in outcome.rejected[1][1]


def test_robust_rules_take_a_step_by_update_count_never_by_declared_counts() -> None:
    honest, learner, own = honest_and_victim(replace(SETTINGS, merge="median"))
    greedy = replace(honest, sample_count=10**6)

    outcome = learner.merge(own.sample_count, [greedy], Network(nodes=4, mean_samples=48.0))

    assert outcome.share == 2 / 4


def test_a_payload_norm_checks_the_header_against_the_chain_record_when_asked() -> None:
    honest, victim, _ = honest_and_victim()
    norm = victim.payload_norm(honest.payload)
    header = decode_delta(honest.payload, victim.base_state).header

    assert victim.payload_norm(honest.payload, header.author, header.round) == norm
    with pytest.raises(CodecError):  # a front-run hash: recorded by another node than the header names
        victim.payload_norm(honest.payload, "0x" + "ab" * 20, header.round)


@pytest.mark.parametrize("codec", ["topk", "int8", "fp16"])
def test_with_a_lossy_codec_peers_that_merge_the_same_payloads_hold_the_same_model(codec: str) -> None:
    # Two peers from the same genesis each train a round and merge the other's payload.
    # Each steps by its payload as the other receives it (not its full-precision delta),
    # so both end at the same model; what the codec left out waits in error feedback.
    images = digits_image_set(300)
    settings = replace(SETTINGS, codec=codec, topk_fraction=0.1)
    a, b = Learner(settings, images), Learner(replace(settings, seed=1), images)
    b.load_state(a.state())  # one genesis
    a.author = b.author = AUTHOR
    ca, cb = a.train_round(1, frozenset()), b.train_round(1, frozenset())
    network = Network(nodes=2, mean_samples=(ca.sample_count + cb.sample_count) / 2)

    a.merge(ca.sample_count, [PeerPayload("b", cb.delta_hash, cb.payload, cb.sample_count)], network)
    b.merge(cb.sample_count, [PeerPayload("a", ca.delta_hash, ca.payload, ca.sample_count)], network)

    sa, sb = a.state(), b.state()
    drift = max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)
    assert drift <= 1e-6, drift
