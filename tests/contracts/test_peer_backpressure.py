"""Backpressure: a peer whose contributions cannot be recorded stops training at
`max_unrecorded`, goes on merging, and trains again once the chain takes them.

A real `Peer` (learner on sklearn's digits, checkpoint folder, recorder, chain watch,
prefetcher) on the eth-tester chain. Its ledger handle stops taking transactions after
its first record (reads still work, as on a congested chain or a link that drops the
long requests); a second node keeps recording on the real chain, its payloads served by
a stand-in network. The test reacts to what the peer writes in its status, never to time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator

import trio

from contracts.errors import ChainUnavailable
from contracts.ledger import AuditLedger
from gossip import Announcement
from gossip.identity import eth_address_from_peer_id, peer_id_from_secret, peer_id_to_bytes
from node.config import NodeConfig
from node.learner import Learner
from node.peer.loop import Peer
from node.peer.process import learner_settings
from node.peer.status import PeerStatus
from tests.contracts.conftest import Chain
from tests.node.learning_data import digits_image_set

BOUND = 3
ROUNDS = 10


class TxRefusingLedger:
    """The peer's real ledger handle; while `refusing`, no transaction gets through."""

    def __init__(self, ledger: AuditLedger) -> None:
        self._ledger = ledger
        self.refusing = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ledger, name)
        if name != "record_contributions":
            return attr

        def record(*args: Any, **kwargs: Any) -> Any:
            if self.refusing:
                raise ChainUnavailable("the JSON-RPC endpoint timed out")
            return attr(*args, **kwargs)

        return record


class ServingNet:
    """Stands in for GossipNetwork: serves the payloads it is given, hears no gossip."""

    def __init__(self) -> None:
        self.payloads: dict[bytes, bytes] = {}
        self.announced: list[Announcement] = []
        self.stats = SimpleNamespace(dropped={}, bytes_sent=0, bytes_received=0)

    def connected_peers(self) -> list[str]:
        return []

    async def announcements(self) -> AsyncIterator[Announcement]:
        await trio.sleep_forever()
        yield  # pragma: no cover

    async def announce(self, announcement: Announcement, payload: bytes | None = None) -> None:
        self.announced.append(announcement)

    async def fetch(self, delta_hash: bytes, from_peers: list[str], **_: Any) -> bytes:
        return self.payloads[delta_hash]


def registered(chain: Chain, admin: AuditLedger) -> tuple[bytes, AuditLedger]:
    key = chain.funded_key()
    secret = bytes.fromhex(key[2:])
    handle = chain.handle(key)
    admin.register_node(handle.account or "", peer_id_to_bytes(peer_id_from_secret(secret)), 1_000)
    return secret, handle


async def test_training_pauses_at_the_bound_merges_meanwhile_and_resumes_when_recorded(
    chain: Chain, admin: AuditLedger, tmp_path: Path
) -> None:
    config = NodeConfig(
        checkpoint_dir=tmp_path / "a", rounds=ROUNDS, local_steps=2, batch_size=8, chain_poll=0.05,
        eval_every=ROUNDS, max_unrecorded=BOUND,
    )
    images = digits_image_set(200)
    settings = learner_settings(config)
    (secret, handle), (other_secret, other) = registered(chain, admin), registered(chain, admin)
    ledger = TxRefusingLedger(handle)
    peer = Peer(config, secret, ledger, Learner(settings, images))  # type: ignore[arg-type]
    admin.set_genesis_model(peer.learner.genesis_hash)
    peer.prepare()
    net = ServingNet()
    colleague = Learner(replace(settings, seed=1), images)
    colleague.author = eth_address_from_peer_id(peer_id_from_secret(other_secret))
    seen: list[PeerStatus] = []
    write_status = peer.write_status

    async def observe() -> None:
        """Every status the peer writes (each round and each chain poll), and the test's moves."""
        status = peer.status()
        seen.append(status)
        if status.recorded_total >= 1 and not ledger.refusing and not any(s.paused for s in seen):
            ledger.refusing = True  # from now on nothing is recorded
        if status.paused and not net.payloads:  # paused: does it still merge? a colleague records
            c = colleague.train_round(1, frozenset())
            other.record_contribution(c.delta_hash, c.base_hash, 1, c.sample_count, c.data_root, c.epsilon)
            net.payloads[c.delta_hash] = c.payload
        if status.paused and status.merged_total >= 1:
            ledger.refusing = False  # the chain takes transactions again
        await write_status()

    peer.write_status = observe  # type: ignore[method-assign]
    with trio.fail_after(120):  # a safety net: the peer finishes its rounds by itself
        await peer.run(net)  # type: ignore[arg-type]

    paused = [s for s in seen if s.paused]
    assert paused, "training never paused"
    assert max(s.queued_records for s in seen) <= BOUND  # the backlog stayed within its bound
    assert paused[0].queued_records == BOUND and paused[0].recorder == "chain unavailable"
    assert paused[0].training == f"paused: {BOUND} contributions waiting to be recorded (max_unrecorded {BOUND})"
    assert any(s.merged_total >= 1 for s in paused)  # it merged while paused
    state = peer.state
    trained = {e.round for e in state.journal}
    merge_only = {h["round"] for h in state.history} - trained
    assert merge_only and max(trained) > max(merge_only)  # paused rounds, then training again
    assert all(e.status == "recorded" for e in state.journal) and len(net.announced) == len(trained)
    assert peer.status().training == "ok" and state.round == ROUNDS
