"""ChainWatch as the anti-entropy: the known-but-unmerged counter, and records the inbox
dropped offered again (no chain needed: the records are given)."""

from __future__ import annotations

from pathlib import Path

from node.checkpoint import CheckpointStore
from node.peer.chain_view import Recorded
from node.peer.inbox import MAX_TRIES, DeltaInbox, key_of
from node.peer.norms import NormBook
from node.peer.watch import ChainWatch

US, THEM = "0x" + "aa" * 20, "0x" + "bb" * 20


def recorded(tag: int, author: str = THEM) -> Recorded:
    return Recorded(bytes([tag]) * 32, f"peer-{author[2:6]}", tag, author)


def watch_over(inbox: DeltaInbox, tmp_path: Path) -> ChainWatch:
    return ChainWatch(None, inbox, NormBook({}), CheckpointStore(tmp_path), len, US, poll=1.0)  # type: ignore[arg-type]


def test_the_counter_holds_other_nodes_records_until_merged_or_refused(tmp_path: Path) -> None:
    inbox = DeltaInbox({}, {})
    watch = watch_over(inbox, tmp_path)
    ours, merged, refused, waiting = recorded(1, US), recorded(2), recorded(3), recorded(4)

    watch.offer([ours, merged, refused, waiting])
    assert watch.unmerged() == 3  # our own record is not counted

    inbox.settle([merged.delta_hash], round_=5)
    inbox.refuse(key_of(refused.delta_hash), "undecodable")

    assert watch.unmerged() == 1
    watch.offer([merged])  # read again on chain: still merged
    assert watch.unmerged() == 1


def test_a_record_the_inbox_forgot_is_offered_again_and_a_reconnect_retries_at_once(tmp_path: Path) -> None:
    inbox = DeltaInbox({}, {})
    watch = watch_over(inbox, tmp_path)
    peers: list[str] = []
    watch.connected = lambda: peers
    record = recorded(7)
    key = key_of(record.delta_hash)
    watch.offer([record])
    ann = inbox.next_for(record.author_peer_id)
    assert ann is not None
    for _ in range(MAX_TRIES):  # "not recorded" (a lagging RPC node, say): forgotten
        inbox.fail(ann, "not-recorded", forget=True)
    assert not inbox.pending(key) and inbox.wanted(key)

    watch.repair()

    assert inbox.pending(key) and watch.unmerged() == 1  # wanted again: the chain has it
    inbox.fail(ann, "fetch-failed")
    assert inbox.next_for(record.author_peer_id) is None  # backing off
    peers.append(record.author_peer_id)
    watch.repair()  # the author connected: the network may have healed
    assert inbox.next_for(record.author_peer_id) is not None
