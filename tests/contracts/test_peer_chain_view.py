"""The peer's view of the chain: the merge normaliser's mean sample count (eth-tester)."""

from __future__ import annotations

from collections.abc import Callable

from contracts.errors import ChainUnavailable
from contracts.ledger import AuditLedger
from gossip import Announcement
from node.config import NodeConfig
from node.peer.chain_view import ChainView, Verified
from node.peer.inbox import DeltaInbox, key_of
from node.peer.norms import NormBook
from node.peer.prefetch import Prefetcher
from node.peer.status import Counters
from tests.contracts.conftest import Chain
from tests.contracts.peer_fixtures import encoded_delta, real_node


def _record(node: AuditLedger, tag: int, samples: int) -> None:
    node.record_contribution(bytes([tag]) * 32, bytes(32), tag, samples, bytes([tag]) * 32, 0.0)


def test_registry_and_mean_sample_count_are_read_only_on_refresh(
    admin: AuditLedger, registered_node: Callable[[], AuditLedger]
) -> None:
    first, second = registered_node(), registered_node()
    view = ChainView(admin)
    assert view.active_nodes() == 1  # nothing read yet
    view.refresh()
    assert view.mean_sample_count(default=7) == 7  # nothing recorded: the caller's count

    _record(first, 1, 10)
    _record(second, 2, 20)
    _record(first, 3, 60)
    assert view.mean_sample_count(default=7) == 7  # not refreshed yet: no chain call here
    view.refresh()
    assert view.mean_sample_count(default=7) == 30

    _record(second, 4, 50)
    view.refresh()
    view.refresh()  # a second refresh reads nothing twice
    assert view.mean_sample_count(default=7) == 35
    assert view.active_nodes() == 2


def test_weights_are_capped_and_the_mean_counts_capped_weights(
    chain: Chain, admin: AuditLedger
) -> None:
    honest, greedy = real_node(chain, admin, sample_cap=100), real_node(chain, admin, sample_cap=100)
    view = ChainView(admin)
    honest.ledger.record_contribution(b"\x01" * 32, bytes(32), 1, 80, b"\x01" * 32, 0.0)
    admin.set_sample_cap(greedy.address, 100)
    greedy.ledger.record_contribution(b"\x02" * 32, bytes(32), 1, 100, b"\x02" * 32, 0.0)
    admin.set_sample_cap(greedy.address, 10)  # the consortium lowers the greedy node's share

    records = view.refresh()

    assert [(r.author, r.round) for r in records] == [(honest.address, 1), (greedy.address, 1)]
    assert view.mean_sample_count(default=1) == (80 + 10) / 2
    verified = view.verify(b"\x02" * 32, greedy.peer_id)
    assert isinstance(verified, Verified) and verified.weight == 10
    assert view.verify(b"\x02" * 32, honest.peer_id) == "wrong-author"
    assert view.verify(b"\x03" * 32, honest.peer_id) == "not-recorded"


def test_a_revoked_nodes_records_stay_valid_on_every_reader(chain: Chain, admin: AuditLedger) -> None:
    node = real_node(chain, admin)
    node.ledger.record_contribution(b"\x01" * 32, bytes(32), 1, 50, b"\x01" * 32, 0.0)
    admin.revoke_node(node.address)

    early, late = ChainView(admin), ChainView(admin)

    assert isinstance(early.verify(b"\x01" * 32, node.peer_id), Verified)
    assert [r.delta_hash for r in late.refresh()] == [b"\x01" * 32]  # a late joiner sees it too
    assert not late.is_member(node.peer_id)  # but it is no longer heard on the network


class FailingOnce:
    """A ledger whose `contribution` call fails once with a chain error, then works."""

    def __init__(self, ledger: AuditLedger) -> None:
        self._ledger = ledger
        self.failed = False

    def contribution(self, delta_hash: bytes) -> object:
        if not self.failed:
            self.failed = True
            raise ChainUnavailable("connection reset (injected)")
        return self._ledger.contribution(delta_hash)

    def __getattr__(self, name: str) -> object:
        return getattr(self._ledger, name)


class Holder:
    """The network as the prefetcher sees it: one peer that serves one payload."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def connected_peers(self) -> list[str]:
        return []

    async def fetch(self, delta_hash: bytes, from_peers: list[str], ordered: bool) -> bytes:
        return self.payload


async def test_a_chain_error_mid_verification_is_unknown_and_retried_never_a_refusal(
    chain: Chain, admin: AuditLedger
) -> None:
    author = real_node(chain, admin)
    delta = encoded_delta(author.address, 1)
    author.ledger.record_contribution(delta.delta_hash, bytes(32), 1, 40, b"\x01" * 32, 0.0)
    refused: dict[str, str] = {}
    inbox = DeltaInbox({}, refused)
    counters = Counters()
    ann = Announcement(author.peer_id, 1, delta.delta_hash, delta.size, "fp32", {})
    inbox.offer(ann)
    norms = NormBook({})
    prefetcher = Prefetcher(
        inbox, ChainView(FailingOnce(admin)), Holder(delta.payload), NodeConfig(fan_out=2), counters,  # type: ignore[arg-type]
        norms, measure=lambda payload, author, round_: 1.5,
    )

    first = await prefetcher.pull_one(ann)
    assert first is None and refused == {} and inbox.pending(key_of(delta.delta_hash))
    assert counters.dropped == {"unverifiable-chain-down": 1}

    second = await prefetcher.pull_one(ann)

    assert second is not None and second.payload == delta.payload
    assert (second.author, second.round, second.sample_count) == (author.address, 1, 40)
    assert norms.norms == {key_of(delta.delta_hash): 1.5}  # measured before it is delivered
