"""DeltaInbox: one owner for announced / ready / merged / refused deltas."""

from __future__ import annotations

import trio
import trio.testing

from gossip import Announcement
from node.learner import PeerPayload
from node.peer.inbox import MAX_TRIES, DeltaInbox, key_of


def ann(peer: str, tag: int, round_: int = 1) -> Announcement:
    return Announcement(peer, round_, bytes([tag]) * 32, 10, "fp32", {})


def payload(a: Announcement) -> PeerPayload:
    return PeerPayload(a.peer_id, a.delta_hash, b"bytes", 5)


def test_a_delta_goes_announced_ready_taken_merged_and_is_never_wanted_again() -> None:
    merged: dict[str, int] = {}
    inbox = DeltaInbox(merged, {})
    a = ann("p1", 1)

    assert inbox.offer(a)
    assert inbox.next_for("p1") == a
    inbox.deliver(payload(a))
    assert inbox.next_for("p1") is None and inbox.has_ready()
    taken = inbox.take(fan_out=1)
    inbox.settle([p.delta_hash for p in taken], round_=4)

    assert [p.delta_hash for p in taken] == [a.delta_hash]
    assert merged == {key_of(a.delta_hash): 4}
    assert not inbox.offer(a)  # announced again: not wanted
    assert not inbox.has_ready()


def test_newest_round_is_pulled_first_and_take_respects_fan_out() -> None:
    inbox = DeltaInbox({}, {})
    old, new, other = ann("p1", 1, round_=1), ann("p1", 2, round_=5), ann("p2", 3)
    for a in (old, new, other):
        inbox.offer(a)

    assert inbox.next_for("p1") == new
    assert sorted(inbox.peers_to_pull(busy=["p2"])) == ["p1"]
    for a in (old, new, other):
        inbox.deliver(payload(a))
    first = inbox.take(fan_out=1)

    assert len({p.source for p in first}) == 1  # all of one peer's ready payloads
    assert len(first) + len(inbox.take(fan_out=1)) == 3


def test_a_failed_pull_is_retried_then_refused_and_a_final_failure_refuses_at_once() -> None:
    refused: dict[str, str] = {}
    inbox = DeltaInbox({}, refused)
    a, b = ann("p1", 1), ann("p1", 2)
    inbox.offer(a)
    inbox.offer(b)

    gave_up = [inbox.fail(a, "fetch-failed", final=False) for _ in range(MAX_TRIES)]
    assert gave_up == [False] * (MAX_TRIES - 1) + [True]
    assert inbox.fail(b, "wrong-author", final=True)

    assert refused == {key_of(a.delta_hash): "fetch-failed", key_of(b.delta_hash): "wrong-author"}
    assert inbox.next_for("p1") is None and not inbox.pending(key_of(a.delta_hash))
    assert inbox.settled([key_of(a.delta_hash), key_of(b.delta_hash)])


def test_a_refused_delta_delivered_late_is_not_merged() -> None:
    inbox = DeltaInbox({}, {})
    a = ann("p1", 1)
    inbox.offer(a)
    inbox.refuse(key_of(a.delta_hash), "undecodable")

    inbox.deliver(payload(a))

    assert not inbox.has_ready()


async def test_arrivals_wake_a_waiting_merge() -> None:
    inbox = DeltaInbox({}, {})
    a = ann("p1", 1)
    inbox.offer(a)
    woke = []

    async def wait() -> None:
        await inbox.arrived.wait()
        woke.append(inbox.has_ready())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        inbox.deliver(payload(a))

    assert woke == [True]
