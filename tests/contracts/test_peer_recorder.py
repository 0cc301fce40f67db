"""The recorder survives every answer the chain gives (eth-tester chain, real journal)."""

from __future__ import annotations

from pathlib import Path

import torch

from contracts.ledger import AuditLedger
from node.checkpoint import CheckpointStore, JournalEntry
from node.codec import decode_delta
from node.peer.chain_view import ChainView
from node.peer.durable import Durable
from node.peer.recorder import Recorder
from node.peer.status import Counters
from tests.contracts.conftest import Chain
from tests.contracts.peer_fixtures import AnnounceLog, Node, encoded_delta, real_node


def queue(node: Node, folder: Path, round_: int, samples: int = 40) -> tuple[Recorder, Durable, AnnounceLog]:
    """A recorder over a real checkpoint folder holding one queued contribution."""
    durable = Durable(CheckpointStore(folder))
    delta = encoded_delta(node.address, round_)
    key = "0x" + delta.delta_hash.hex()
    durable.store.save_payload(key, delta.payload)
    durable.state.journal.append(JournalEntry(round_, key, "0x" + "00" * 32, samples, "0x" + "11" * 32, 0.0))
    net = AnnounceLog()
    recorder = Recorder(durable, ChainView(node.ledger), net, node.address, node.peer_id, "fp32", Counters(), poll=0.1)  # type: ignore[arg-type]
    return recorder, durable, net


async def test_a_front_run_hash_is_re_encoded_with_a_fresh_nonce_and_recorded(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    honest, thief = real_node(chain, admin), real_node(chain, admin)
    recorder, durable, net = queue(honest, tmp_path, round_=1)
    stolen = durable.state.journal[0].delta_hash
    thief.ledger.record_contribution(bytes.fromhex(stolen[2:]), bytes(32), 1, 1_000, b"\x00" * 32, 0.0)

    await recorder._record_queued()  # sees the theft, re-encodes
    await recorder._record_queued()  # records the new hash

    entry = durable.state.journal[0]
    assert entry.status == "recorded" and entry.nonce == 1 and entry.delta_hash != stolen
    ref = honest.ledger.contribution(bytes.fromhex(entry.delta_hash[2:]))
    assert ref is not None and ref.author == honest.address
    payload = durable.store.load_payload(entry.delta_hash)
    assert payload is not None
    reference = {"w": torch.zeros(4, 3), "b": torch.zeros(3)}
    assert decode_delta(payload, reference, author=honest.address, round=1).header.nonce == 1
    assert [a.delta_hash.hex() for a in net.announced] == [entry.delta_hash[2:]]
    assert CheckpointStore(tmp_path).load_state().journal[0] == entry  # durable


async def test_revoked_stale_or_over_cap_entries_are_rejected_for_good_and_the_queue_moves_on(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    node = real_node(chain, admin, sample_cap=50)
    recorder, durable, net = queue(node, tmp_path / "a", round_=1, samples=51)  # over the cap
    later = encoded_delta(node.address, 2, scale=2.0)
    durable.store.save_payload("0x" + later.delta_hash.hex(), later.payload)
    durable.state.journal.append(JournalEntry(2, "0x" + later.delta_hash.hex(), "0x" + "00" * 32, 50, "0x" + "11" * 32, 0.0))

    await recorder._record_queued()

    over, ok = durable.state.journal
    assert over.status == "rejected" and "cap" in over.reason
    assert ok.status == "recorded" and len(net.announced) == 1
    assert recorder.state == "ok"

    stale, _, _ = queue(node, tmp_path / "b", round_=2)  # round 2 is recorded already
    await stale._record_queued()
    assert stale.durable.state.journal[0].status == "rejected" and stale.state.startswith("rejected")

    admin.revoke_node(node.address)
    revoked, _, _ = queue(node, tmp_path / "c", round_=3)
    await revoked._record_queued()
    assert revoked.durable.state.journal[0].status == "rejected" and "revoked" in revoked.state


async def test_a_restart_meets_its_own_recorded_entry_and_takes_it_as_recorded(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    node = real_node(chain, admin)
    recorder, durable, net = queue(node, tmp_path, round_=1)
    entry = durable.state.journal[0]
    # recorded just before a crash, the journal never heard of it
    node.ledger.record_contribution(bytes.fromhex(entry.delta_hash[2:]), bytes(32), 1, 40, b"\x11" * 32, 0.0)

    await recorder._record_queued()

    assert durable.state.journal[0].status == "recorded" and len(net.announced) == 1


async def test_a_backlog_goes_out_as_one_pipeline_and_its_epsilons_telescope_to_the_total(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    node = real_node(chain, admin)
    recorder, durable, net = queue(node, tmp_path, round_=1)
    durable.state.journal.clear()
    totals = [0.1, 0.25, 0.25, 0.4000004, 0.7]  # the accountant's lifetime epsilon after each round
    for round_, total in enumerate(totals, start=1):
        delta = encoded_delta(node.address, round_, scale=float(round_))
        key = "0x" + delta.delta_hash.hex()
        durable.store.save_payload(key, delta.payload)
        durable.state.journal.append(
            JournalEntry(round_, key, "0x" + "00" * 32, 40, "0x" + "11" * 32, 0.0, epsilon_total=total))
    sent: list[int] = []
    pipeline = node.ledger.record_contributions

    def counting(records, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(len(records))
        return pipeline(records, **kwargs)

    node.ledger.record_contributions = counting  # type: ignore[method-assign]

    await recorder._record_queued()

    assert sent == [len(totals)]  # one pipeline for the whole backlog
    assert [e.status for e in durable.state.journal] == ["recorded"] * len(totals)
    assert [a.round for a in net.announced] == [1, 2, 3, 4, 5]
    mine = node.ledger.contributions(node=node.address)
    assert [round(c.epsilon_spent, 6) for c in mine] == [0.1, 0.15, 0.0, 0.15, 0.3]
    info = node.ledger.node_info(node.address)
    assert info is not None and info.epsilon_spent_micros == 700_000
