"""DeltaInbox: one owner for announced / ready / merged / refused deltas."""

from __future__ import annotations

import trio
import trio.testing

from gossip import Announcement
from node.learner import PeerPayload
from node.peer.inbox import MAX_TRIES, RETRY_BASE, RETRY_MAX, DeltaInbox, key_of


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


def test_oldest_round_is_pulled_first_and_take_respects_fan_out() -> None:
    inbox = DeltaInbox({}, {})
    old, new, other = ann("p1", 1, round_=1), ann("p1", 2, round_=5), ann("p2", 3)
    for a in (old, new, other):
        inbox.offer(a)

    assert inbox.next_for("p1") == old
    assert inbox.next_for("p1", skip={key_of(old.delta_hash)}) == new  # old is being pulled
    assert inbox.next_for("p1", skip={key_of(new.delta_hash), key_of(old.delta_hash)}) is None
    assert sorted(inbox.peers_to_pull(busy=["p2"])) == ["p1"]
    for a in (old, new, other):
        inbox.deliver(payload(a))
    first = inbox.take(fan_out=1)

    assert len({p.source for p in first}) == 1  # all of one peer's ready payloads
    assert len(first) + len(inbox.take(fan_out=1)) == 3


def test_a_failed_pull_never_refuses_it_backs_off_and_a_false_announcement_is_dropped() -> None:
    clock = [100.0]
    refused: dict[str, str] = {}
    inbox = DeltaInbox({}, refused, clock=lambda: clock[0])
    unreachable, stolen, unrecorded = ann("p1", 1), ann("p1", 2), ann("p2", 3)
    for a in (unreachable, stolen, unrecorded):
        inbox.offer(a)
    keys = [key_of(a.delta_hash) for a in (unreachable, stolen, unrecorded)]

    settled_now = [inbox.fail(unreachable, "fetch-failed") for _ in range(MAX_TRIES)]
    inbox.drop(stolen)  # p1 announced a hash another node recorded
    for _ in range(MAX_TRIES):
        inbox.fail(unrecorded, "not-recorded", forget=True)

    # timing (an unreachable holder, a record not mined yet) refuses nothing, and
    # neither does a false announcement: the hash stays wanted under its true author
    assert settled_now == [False] * (MAX_TRIES - 1) + [True]
    assert refused == {}
    assert not inbox.pending(keys[1]) and inbox.wanted(keys[1])
    assert inbox.settled(keys)  # nothing to wait for now (a catch-up goes on)
    assert inbox.pending(keys[0]) and inbox.next_for("p1") is None  # backing off
    assert not inbox.pending(keys[2]) and inbox.wanted(keys[2])  # forgotten, not refused
    clock[0] += RETRY_BASE * 2 ** MAX_TRIES
    assert inbox.next_for("p1") == unreachable and inbox.peers_to_pull() == ["p1"]  # due again
    assert inbox.offer(unrecorded)  # recorded later: the chain watcher offers it again
    assert inbox.offer(ann("true-author", 2))  # the false announcement's hash, offered by the chain watch


def test_backoff_is_bounded_and_a_reconnect_makes_every_failed_pull_due_at_once() -> None:
    clock = [0.0]
    inbox = DeltaInbox({}, {}, clock=lambda: clock[0])
    a = ann("p1", 1)
    inbox.offer(a)
    for _ in range(20):  # a long partition
        inbox.fail(a, "fetch-failed")

    clock[0] += RETRY_MAX - 0.01
    assert inbox.next_for("p1") is None  # still backing off...
    clock[0] += 0.01
    assert inbox.next_for("p1") == a  # ...never longer than RETRY_MAX
    inbox.fail(a, "fetch-failed")
    woken = inbox.announced.next

    inbox.retry_now()  # a peer connected: the network may have healed

    assert inbox.next_for("p1") == a and woken.is_set()


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
