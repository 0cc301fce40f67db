"""NormBook: a record's norm reference is a function of the chain order and the payloads'
norms only, so every peer clips and refuses the same updates."""

from __future__ import annotations

import random

from node.peer.norms import WINDOW, WITHHELD_AFTER, ChainRecord, NormBook


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def chain(authors: str) -> list[ChainRecord]:
    """One record per letter, in chain order: 'abca' -> a0 b1 c2 a3."""
    return [ChainRecord(f"{a}{i}", a) for i, a in enumerate(authors)]


def test_the_reference_is_the_median_of_the_nearest_records_by_other_authors() -> None:
    records = chain("abcdeabcde")
    book = NormBook({}, window=4)
    book.extend(records)
    for i, r in enumerate(records):
        book.learn(r.key, float(i + 1))

    # e9's window: d8 c7 b6 a5 (e4 is its own author's) -> median of 9, 8, 7, 6
    assert book.reference("e9") == 7.5
    # a5's window: e4 d3 c2 b1 (a0 is its own)
    assert book.reference("a5") == 3.5
    # b1 has one other author's record before it: that one alone
    assert book.reference("b1") == 1.0


def test_the_first_record_of_a_network_is_judged_by_the_first_other_author_after_it() -> None:
    book = NormBook({})
    book.extend(chain("aa"))
    book.learn("a0", 1.0)
    book.learn("a1", 1.0)
    assert book.reference("a0") is None  # nobody else has recorded: wait

    book.extend([ChainRecord("b2", "b")])
    book.learn("b2", 4.0)
    assert book.reference("a0") == 4.0 and book.reference("a1") == 4.0


def test_a_member_without_its_norm_holds_the_decision_until_it_is_given_up() -> None:
    clock = Clock()
    refused: dict[str, str] = {}
    book = NormBook({}, refused, clock=clock)
    book.extend(chain("abc"))
    book.learn("a0", 1.0)
    book.learn("c2", 2.0)
    assert book.reference("c2") is None  # b1 may still arrive

    refused["b1"] = "undecodable"  # refused before its norm was known: everyone passes over it
    assert book.reference("c2") == 1.0

    other = NormBook({}, clock=clock)
    other.extend(chain("abc"))
    other.learn("a0", 1.0)
    clock.now = WITHHELD_AFTER + 1  # b1 withheld: passed over after a while
    assert other.reference("c2") == 1.0
    assert [r.key for r in other.missing()] == ["b1", "c2"]


def test_peers_that_learn_norms_in_any_order_agree_on_every_reference() -> None:
    rng = random.Random(3)
    records = chain("abcde" * 6)
    norms = {r.key: rng.uniform(0.5, 2.0) * (10.0 if r.author == "e" else 1.0) for r in records}
    references = []
    for seed in range(3):
        book = NormBook({})
        order = list(records)
        random.Random(seed).shuffle(order)
        for r in order:  # deliveries in a different order on each peer
            book.learn(r.key, norms[r.key])
        book.extend(records)
        references.append({r.key: book.reference(r.key) for r in records})
    assert references[0] == references[1] == references[2]
    # the x10 author cannot raise the reference of its own records: others judge them
    flipped = [references[0][r.key] for r in records if r.author == "e"]
    assert max(flipped) < 2.0
    assert all(norms[r.key] > 5 * references[0][r.key] for r in records if r.author == "e")


def test_the_window_is_bounded() -> None:
    records = chain("ab" * (WINDOW + 3))
    book = NormBook({})
    book.extend(records)
    for i, r in enumerate(records):
        book.learn(r.key, 100.0 if i < 4 else 1.0)  # the early, large norms drop out of later windows
    assert book.reference(records[-1].key) == 1.0
