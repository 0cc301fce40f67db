"""Which withdrawals a peer obeys (DESIGN.md, "Trust model"): one made with the subject's
token, relayed by anyone, or one made by the peer itself as custodian. A withdrawal by
commitment from another node is on chain but not obeyed: node B cannot withdraw node
A's patients (eth-tester chain, a real trainer, a real checkpoint folder)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from eth_utils import keccak

from contracts.errors import AlreadyWithdrawn
from contracts.ledger import AuditLedger
from node.checkpoint import CheckpointStore
from node.models import build_model
from node.peer.consent import ConsentWatcher
from node.peer.durable import Durable
from node.peer.status import Counters
from node.trainer import LocalTrainer
from tests.contracts.conftest import Chain
from tests.contracts.peer_fixtures import Node, real_node
from tests.node.learning_data import digits_image_set

SUBJECTS = 30


def token(i: int) -> bytes:
    return (1000 + i).to_bytes(32, "big")


def hospital_a_trainer() -> LocalTrainer:
    """Hospital A's trainer: every image's subject commitment is keccak256 of a token."""
    base = digits_image_set(n=300)
    images = replace(base, subjects=tuple(keccak(token(i % SUBJECTS)) for i in range(300)))
    # one batch is the whole training split: every consented subject is used each round
    return LocalTrainer(build_model(seed=0), images, seed=1, batch_size=300, holdout_fraction=0.2)


def watcher_for(node: Node, folder: Path, trainer: LocalTrainer) -> tuple[ConsentWatcher, Counters]:
    store = CheckpointStore(folder)
    counters = Counters()
    return ConsentWatcher(Durable(store, store.load_state()), node.ledger, trainer, counters, poll=0.1), counters


def training_subject(trainer: LocalTrainer, i: int) -> int:
    """The index of the i-th token whose subject is in the training split."""
    train = set(trainer.train_subjects)
    return [t for t in range(SUBJECTS) if keccak(token(t)) in train][i]


async def test_a_withdrawal_by_another_node_is_not_obeyed_and_a_withdrawal_by_token_or_custodian_is(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    a, b = real_node(chain, admin), real_node(chain, admin)
    relayer = chain.handle(chain.funded_key())
    trainer = hospital_a_trainer()
    watcher, counters = watcher_for(a, tmp_path, trainer)
    griefed, own, by_token = (training_subject(trainer, i) for i in range(3))
    before = trainer.train_size

    b.ledger.withdraw_consent(keccak(token(griefed)))  # B withdraws A's subject by commitment
    await watcher.apply_new()

    assert (counters.withdrawals_ignored, counters.withdrawals_applied) == (1, 0)
    assert trainer.train_size == before and keccak(token(griefed)) in trainer.train_subjects
    assert keccak(token(griefed)) in trainer.train(1).subjects_used  # A keeps training on it
    assert not a.ledger.is_withdrawn(keccak(token(griefed)))  # it binds B only
    assert b.ledger.is_withdrawn_for(keccak(token(griefed)), b.address)
    assert not a.ledger.is_withdrawn_for(keccak(token(griefed)), a.address)

    a.ledger.withdraw_consent(keccak(token(own)))  # A, the custodian
    relayer.withdraw_consent_with_token(token(by_token))  # the patient's token, relayed by anyone
    await watcher.apply_new()

    assert (counters.withdrawals_ignored, counters.withdrawals_applied) == (1, 2)
    used = set(trainer.train(1).subjects_used)
    assert keccak(token(griefed)) in used
    assert not {keccak(token(own)), keccak(token(by_token))} & used
    saved = CheckpointStore(tmp_path).load_state()
    assert saved.withdrawn == sorted("0x" + keccak(token(t)).hex() for t in (own, by_token))

    restarted, counters_after = watcher_for(a, tmp_path, hospital_a_trainer())
    await restarted.apply_new()  # reads only what is new: nothing
    assert (counters_after.withdrawals_ignored, counters_after.withdrawals_applied) == (0, 0)
    assert restarted.withdrawn == {keccak(token(own)), keccak(token(by_token))}


async def test_a_withdrawal_by_another_node_blocks_neither_the_token_nor_the_custodian(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    """Node B withdraws A's subject by commitment first (it may have read the commitment
    from the patient's pending token transaction, or from a published proof): the
    patient's token withdrawal and A's own still go through, and A obeys them."""
    a, b = real_node(chain, admin), real_node(chain, admin)
    relayer = chain.handle(chain.funded_key())
    trainer = hospital_a_trainer()
    watcher, counters = watcher_for(a, tmp_path, trainer)
    by_token, own = (training_subject(trainer, i) for i in range(2))
    b.ledger.withdraw_consent(keccak(token(by_token)))
    b.ledger.withdraw_consent(keccak(token(own)))

    relayer.withdraw_consent_with_token(token(by_token))
    a.ledger.withdraw_consent(keccak(token(own)))
    await watcher.apply_new()

    assert (counters.withdrawals_ignored, counters.withdrawals_applied) == (2, 2)
    assert not {keccak(token(own)), keccak(token(by_token))} & set(trainer.train(1).subjects_used)
    assert a.ledger.is_withdrawn(keccak(token(by_token))) and not a.ledger.is_withdrawn(keccak(token(own)))
    assert a.ledger.is_withdrawn_for(keccak(token(own)), a.address)
    with pytest.raises(AlreadyWithdrawn):  # once per sender, once by token
        b.ledger.withdraw_consent(keccak(token(own)))
    with pytest.raises(AlreadyWithdrawn):
        relayer.withdraw_consent_with_token(token(by_token))
    with pytest.raises(AlreadyWithdrawn):  # a token withdrawal binds the custodian already
        a.ledger.withdraw_consent(keccak(token(by_token)))


async def test_a_round_that_used_a_subject_withdrawn_before_its_record_is_never_recorded(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    """The withdrawal lands after the round trained and before it is recorded: the
    recorder reads the chain just before sending and drops the round (what `audit
    verify` checks: no contribution recorded after a withdrawal uses the subject)."""
    from node.checkpoint import JournalEntry
    from node.peer.chain_view import ChainView
    from node.peer.recorder import Recorder
    from tests.contracts.peer_fixtures import AnnounceLog, encoded_delta

    a = real_node(chain, admin)
    relayer = chain.handle(chain.funded_key())
    trainer = hospital_a_trainer()
    watcher, _ = watcher_for(a, tmp_path, trainer)
    durable = watcher.durable
    used, kept = keccak(token(0)), keccak(token(1))
    for round_, subjects in ((1, [used]), (2, [kept])):
        delta = encoded_delta(a.address, round_, scale=1.0 + round_)
        key = "0x" + delta.delta_hash.hex()
        durable.store.save_payload(key, delta.payload)
        durable.store.save_audit(round_, {"delta_hash": key, "subjects": ["0x" + s.hex() for s in subjects]})
        durable.state.journal.append(JournalEntry(round_, key, "0x" + "00" * 32, 40, "0x" + "11" * 32, 0.0))
    net = AnnounceLog()
    recorder = Recorder(durable, ChainView(a.ledger), net, a.address, a.peer_id, "fp32", watcher.counters,  # type: ignore[arg-type]
                        poll=0.1, consent=watcher)
    relayer.withdraw_consent_with_token(token(0))  # mined after round 1 trained on it

    await recorder._record_queued()

    first, second = durable.state.journal
    assert first.status == "rejected" and "withdrawn since" in first.reason
    assert second.status == "recorded"
    assert [c.round for c in a.ledger.contributions(node=a.address)] == [2]
    assert [ann.round for ann in net.announced] == [2]


async def test_a_withdrawal_mined_between_the_check_and_the_record_is_caught_by_the_contract(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    """The race the check above leaves: the recorder read the withdrawals, then the
    patient's withdrawal was mined, then our record. The record carries the block up to
    which it read; the contract refuses it (WithdrawalNotSeen), the recorder reads
    again and drops the round."""
    from contracts.errors import WithdrawalNotSeen
    from node.checkpoint import JournalEntry
    from node.peer.chain_view import ChainView
    from node.peer.recorder import Recorder
    from tests.contracts.peer_fixtures import AnnounceLog, encoded_delta

    a = real_node(chain, admin)
    relayer = chain.handle(chain.funded_key())
    watcher, _ = watcher_for(a, tmp_path, hospital_a_trainer())
    durable = watcher.durable
    delta = encoded_delta(a.address, 1, scale=2.0)
    key = "0x" + delta.delta_hash.hex()
    durable.store.save_payload(key, delta.payload)
    durable.store.save_audit(1, {"delta_hash": key, "subjects": ["0x" + keccak(token(0)).hex()]})
    durable.state.journal.append(JournalEntry(1, key, "0x" + "00" * 32, 40, "0x" + "11" * 32, 0.0))
    recorder = Recorder(durable, ChainView(a.ledger), AnnounceLog(), a.address, a.peer_id, "fp32",  # type: ignore[arg-type]
                        watcher.counters, poll=0.1, consent=watcher)
    await watcher.apply_new()
    seen = durable.state.withdrawals_block - 1
    withdrawal = relayer.withdraw_consent_with_token(token(0))
    with pytest.raises(WithdrawalNotSeen) as refused:  # what the contract says to a stale view
        a.ledger.record_contribution(delta.delta_hash, bytes(32), 1, 40, b"\x11" * 32, 0.0, withdrawals_seen_at=seen)
    assert refused.value.error_args == (seen, withdrawal.block_number)

    real_apply, calls = watcher.apply_new, []

    async def misses_the_first_read() -> None:  # the withdrawal lands right after our read
        calls.append(1)
        if len(calls) > 1:
            await real_apply()

    watcher.apply_new = misses_the_first_read  # type: ignore[method-assign]
    await recorder._record_queued()

    [entry] = durable.state.journal
    assert len(calls) == 2 and entry.status == "rejected" and "withdrawn since" in entry.reason
    assert a.ledger.contributions(node=a.address) == []
