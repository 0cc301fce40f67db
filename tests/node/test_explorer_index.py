"""The explorer's index and queries on a real chain: eth-tester in-process (the
contracts tests' fixtures), and anvil for a reset that restarts the chain."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_utils import keccak

from contracts.errors import ChainUnavailable
from contracts.ledger import AuditLedger, account_address, new_private_key, send_ether
from devnet.anvil import free_port, start_anvil, stop_anvil
from devnet.manage import ANVIL_FUNDER_KEY
from gossip.identity import generate_secret, peer_id_bytes_from_secret, peer_id_from_secret
from node.explorer import queries
from node.explorer.index import Index
from tests.contracts.conftest import Chain, admin, chain, chain_backend, chain_module  # noqa: F401

BASE = keccak(b"explorer-base")
ROOT = keccak(b"explorer-root")
HOSTILE_PEER_ID = b"<img src=x onerror=alert(1)><script>window.__xss=1</script>"


def h(value: bytes) -> str:
    return "0x" + value.hex()


def delta(name: str) -> bytes:
    return keccak(name.encode())


@dataclass(frozen=True)
class Scenario:
    """What `recorded` put on chain, to compare the index against."""

    alice: AuditLedger
    bob: AuditLedger
    alice_peer_id: str
    alice_peer_id_bytes: bytes
    genesis: bytes
    custodian_subject: bytes
    token: bytes


@pytest.fixture
def index(tmp_path: Path, chain: Chain) -> Iterator[Index]:  # noqa: F811
    idx = Index(tmp_path / "explorer.sqlite", chain.handle())
    yield idx
    idx.close()


@pytest.fixture
def db(index: Index) -> Iterator[sqlite3.Connection]:
    connection = index.connect()
    yield connection
    connection.close()


@pytest.fixture
def recorded(chain: Chain, admin: AuditLedger) -> Scenario:  # noqa: F811
    """Two nodes (one with a real libp2p peer ID, one with a hostile one), a genesis
    model, contributions, a cap and a budget change, both kinds of withdrawal, and
    a revocation."""
    alice, bob = chain.handle(chain.funded_key()), chain.handle(chain.funded_key())
    secret = generate_secret()
    admin.register_node(alice.account or "", peer_id_bytes_from_secret(secret), 500, epsilon_budget=2.0)
    admin.register_node(bob.account or "", HOSTILE_PEER_ID, 100, epsilon_budget=1.0)
    genesis = keccak(b"genesis model")
    admin.set_genesis_model(genesis)
    alice.record_contribution(delta("a1"), genesis, 1, 120, ROOT, 0.25)
    bob.record_contribution(delta("b1"), genesis, 1, 80, ROOT, 0.5)
    alice.record_contribution(delta("a2"), delta("a1"), 2, 300, ROOT, 0.125)
    admin.set_sample_cap(alice.account or "", 700)
    admin.set_privacy_budget(alice.account or "", 3.0)
    custodian_subject = keccak(b"subject of alice")
    alice.withdraw_consent(custodian_subject)
    token = keccak(b"a consent token")
    chain.handle(chain.admin_key).withdraw_consent_with_token(token)
    alice.record_contribution(delta("a5"), delta("a2"), 5, 10, ROOT, 0.0)
    bob.record_contribution(delta("b2"), delta("b1"), 2, 90, ROOT, 0.25)
    admin.revoke_node(bob.account or "")
    return Scenario(alice, bob, peer_id_from_secret(secret), peer_id_bytes_from_secret(secret), genesis,
                    custodian_subject, token)


def test_sync_indexes_every_kind_of_event(index: Index, db: sqlite3.Connection, recorded: Scenario) -> None:
    # Execute
    status = index.sync()
    view = queries.overview(db)

    # Assert
    head = recorded.alice.block_number()
    assert (status.head_block, status.indexed_block, status.lag_blocks) == (head, head, 0)
    assert status.events == 2 * 3 + 1 + 5 + 1 + 1 + 2 + 1  # a registration emits three events
    assert status.reindexed == 0 and status.contract == recorded.alice.address.lower()
    assert status.genesis_hash == recorded.alice.block(0).hash.lower()
    assert view["totals"] == {"contributions": 5, "nodes": 2, "active_nodes": 1, "withdrawals": 2}
    alice, bob = view["nodes"]
    assert alice == {
        "address": (recorded.alice.account or "").lower(), "peer_id": h(recorded.alice_peer_id_bytes),
        "peer_id_text": recorded.alice_peer_id,
        "active": True, "registered_block": alice["registered_block"], "revoked_block": None,
        "contributions": 3, "last_round": 5, "last_block": alice["last_block"], "sample_cap": 700,
        "epsilon_budget": 3.0, "epsilon_spent": 0.375, "budget_fraction": 0.125,
    }
    assert bob["peer_id_text"] == HOSTILE_PEER_ID.decode() and bob["active"] is False
    assert bob["epsilon_spent"] == 0.75 and bob["budget_fraction"] == 0.75 and bob["last_round"] == 2
    assert view["per_round"] == {
        "rounds": [1, 2, 5],
        "series": {alice["address"]: [1, 1, 1], bob["address"]: [1, 1, 0]},
    }
    token_withdrawal, custodian_withdrawal = view["withdrawals"]  # newest first
    assert token_withdrawal["subject"] == h(keccak(recorded.token)) and token_withdrawal["custodian"] is None
    assert custodian_withdrawal["custodian"] == alice["address"] and not custodian_withdrawal["by_token"]


def test_node_contribution_and_subject_pages(index: Index, db: sqlite3.Connection, recorded: Scenario) -> None:
    # Prepare
    index.sync()
    alice = recorded.alice.account or ""

    # Execute
    page = queries.node_page(db, alice, sort="round", order="asc")
    first = queries.contribution(db, h(delta("a1")))
    second = queries.contribution(db, h(delta("a2")).upper().replace("0X", "0x"))
    custodian = queries.subject(db, h(recorded.custodian_subject))
    by_token = queries.subject(db, h(keccak(recorded.token)))
    never = queries.subject(db, h(keccak(b"nobody")))

    # Assert
    assert page is not None and page["total"] == 3 and page["pages"] == 1
    assert [c["round"] for c in page["contributions"]] == [1, 2, 5]
    assert [point[1] for point in page["epsilon_curve"]] == [0.25, 0.375, 0.375]
    assert [c["sample_cap"] for c in page["cap_history"]] == [500, 700]
    assert [b["epsilon_budget"] for b in page["budget_history"]] == [2.0, 3.0]
    assert page["revoked_block"] is None
    assert first is not None and first["base_is_genesis"] and first["base_contribution"] is None
    assert (first["sample_count"], first["epsilon"], first["data_root"]) == (120, 0.25, h(ROOT))
    assert first["node_peer_id_text"] == recorded.alice_peer_id
    assert second is not None and not second["base_is_genesis"] and second["base_contribution"] == h(delta("a1"))
    assert custodian["withdrawn"] and custodian["contributions_after"] == {alice.lower(): 1}
    assert by_token["withdrawals"][0]["by_token"]
    # A token binds every node: both recorded once after it.
    assert by_token["contributions_after"] == {alice.lower(): 1, (recorded.bob.account or "").lower(): 1}
    assert never == {"subject": h(keccak(b"nobody")), "withdrawn": False, "withdrawals": [], "contributions_after": {}}


def test_node_page_sorts_and_pages(index: Index, db: sqlite3.Connection, recorded: Scenario) -> None:
    index.sync()
    alice = recorded.alice.account or ""

    by_samples = queries.node_page(db, alice, sort="sample_count", order="desc", per_page=2)
    last_page = queries.node_page(db, alice, sort="sample_count", order="desc", per_page=2, page=2)
    by_epsilon = queries.node_page(db, alice, sort="epsilon", order="asc")

    assert by_samples is not None and last_page is not None and by_epsilon is not None
    assert [c["sample_count"] for c in by_samples["contributions"]] == [300, 120]
    assert [c["sample_count"] for c in last_page["contributions"]] == [10]
    assert by_samples["pages"] == 2
    assert [c["epsilon"] for c in by_epsilon["contributions"]] == [0.0, 0.125, 0.25]


def test_search_finds_each_kind_of_name(index: Index, db: sqlite3.Connection, recorded: Scenario) -> None:
    index.sync()
    alice = (recorded.alice.account or "").lower()
    contribution = queries.contribution(db, h(delta("b2")))
    withdrawal = queries.subject(db, h(recorded.custodian_subject))["withdrawals"][0]
    assert contribution is not None

    assert queries.search(db, h(delta("a1"))) == f"/contribution/{h(delta('a1'))}"
    assert queries.search(db, delta("a1").hex().upper()) == f"/contribution/{h(delta('a1'))}"
    assert queries.search(db, contribution["tx_hash"]) == f"/contribution/{h(delta('b2'))}"
    assert queries.search(db, h(recorded.custodian_subject)) == f"/subject/{h(recorded.custodian_subject)}"
    assert queries.search(db, withdrawal["tx_hash"]) == f"/subject/{h(recorded.custodian_subject)}"
    assert queries.search(db, recorded.alice.account or "") == f"/node/{alice}"
    assert queries.search(db, f"  {recorded.alice_peer_id} ") == f"/node/{alice}"
    assert queries.search(db, HOSTILE_PEER_ID.decode()) == f"/node/{(recorded.bob.account or '').lower()}"
    assert queries.search(db, h(keccak(b"unknown"))) is None
    assert queries.search(db, "12D3KooWnothingregisteredhere") is None


def test_since_returns_only_what_is_new(index: Index, db: sqlite3.Connection, recorded: Scenario) -> None:
    # Prepare
    seq = index.sync().events

    # Execute
    nothing = queries.since(db, seq)
    recorded.alice.record_contribution(delta("a6"), BASE, 6, 1, ROOT, 0.0)
    index.sync()
    news = queries.since(db, seq)
    everything = queries.since(db, 0)
    past_the_end = queries.since(db, seq + 1000)

    # Assert
    assert nothing["contributions"] == [] and nothing["seq"] == seq and not nothing["reset"]
    assert [c["delta_hash"] for c in news["contributions"]] == [h(delta("a6"))]
    assert news["seq"] == seq + 1 and news["totals"]["contributions"] == 6
    assert news["status"]["events"] == seq + 1
    assert len(everything["contributions"]) == 6 and len(everything["withdrawals"]) == 2
    assert past_the_end["reset"] is True and past_the_end["seq"] == seq + 1


def test_sync_is_incremental_and_resumes_after_a_restart(
    tmp_path: Path, chain: Chain, recorded: Scenario  # noqa: F811
) -> None:
    # Prepare: index part of the chain, then close
    path = tmp_path / "restart.sqlite"
    first = Index(path, chain.handle())
    partial = first.sync(max_blocks=3)
    first.close()
    recorded.alice.record_contribution(delta("a7"), BASE, 7, 1, ROOT, 0.0)

    # Execute: a new process opens the same file
    second = Index(path, chain.handle())
    resumed = second.status()
    final = second.sync()
    again = second.sync()
    db = second.connect()

    # Assert
    assert partial.lag_blocks > 0 and resumed == partial
    assert final.lag_blocks == 0 and final.reindexed == 0 and final == again
    assert queries.overview(db)["totals"]["contributions"] == 6
    assert db.execute("SELECT COUNT(DISTINCT delta_hash) FROM contributions").fetchone()[0] == 6
    with pytest.raises(sqlite3.OperationalError):
        db.execute("DELETE FROM contributions")
    db.close()
    second.close()


def test_reset_chain_is_reindexed(index: Index, db: sqlite3.Connection, chain: Chain, recorded: Scenario) -> None:  # noqa: F811
    # Prepare: index, then rewind the chain and write another history past the old head
    before = chain.snapshot()
    recorded.alice.record_contribution(delta("lost"), BASE, 9, 1, ROOT, 0.0)
    index.sync()
    chain.revert(before)
    fresh = chain.handle(chain.funded_key())
    chain.handle(chain.admin_key).register_node(fresh.account or "", b"\x00\x25fresh", 10)
    fresh.record_contribution(delta("new history"), BASE, 1, 1, ROOT, 0.0)

    # Execute
    status = index.sync()

    # Assert
    assert status.reindexed == 1 and status.lag_blocks == 0
    assert queries.contribution(db, h(delta("lost"))) is None
    assert queries.contribution(db, h(delta("new history"))) is not None
    assert queries.overview(db)["totals"]["contributions"] == 6


def test_chain_error_propagates_and_keeps_the_index(
    tmp_path: Path, index: Index, db: sqlite3.Connection, recorded: Scenario
) -> None:
    # Prepare
    before = index.sync()
    unreachable = AuditLedger(f"http://127.0.0.1:{free_port()}", recorded.alice.address, timeout=1.0)
    offline = Index(index.path, unreachable)

    # Execute / Assert
    with pytest.raises(ChainUnavailable):
        offline.sync()
    assert offline.status() == before
    assert queries.overview(db)["totals"]["contributions"] == 5
    offline.close()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db: queries.contribution(db, "0x1234"), "64 hex digits"),
        (lambda db: queries.contribution(db, "0x" + "zz" * 32), "hex digits"),
        (lambda db: queries.subject(db, "<script>"), "hex digits"),
        (lambda db: queries.node_page(db, "0x" + "ab" * 19), "40 hex digits"),
        (lambda db: queries.node_page(db, "0x" + "ab" * 20, sort="epsilon; DROP TABLE nodes"), "sort"),
        (lambda db: queries.node_page(db, "0x" + "ab" * 20, order="up"), "order"),
        (lambda db: queries.node_page(db, "0x" + "ab" * 20, page=0), "page"),
        (lambda db: queries.node_page(db, "0x" + "ab" * 20, per_page=10_000), "per_page"),
        (lambda db: queries.since(db, -1), "seq"),
        (lambda db: queries.search(db, "   "), "search"),
        (lambda db: queries.search(db, "x" * 201), "too long"),
    ],
)
def test_malformed_input_is_a_value_error(db: sqlite3.Connection, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call(db)


def test_unknown_names_are_none(index: Index, db: sqlite3.Connection) -> None:
    index.sync()
    assert queries.contribution(db, "0x" + "ab" * 32) is None
    assert queries.node_page(db, "0x" + "ab" * 20) is None
    assert queries.search(db, "0x" + "ab" * 20) is None


# ------------------------------------------------------------------ real anvil


@pytest.mark.slow
def test_restarted_anvil_is_detected_and_reindexed(tmp_path: Path) -> None:
    """A devnet restarted from scratch: same port, chain id and (same deployer and
    nonce) contract address, another history that has grown past the indexed block.
    anvil's block 0 is the same on every start (measured), so only the indexed
    block's hash tells."""
    port = free_port()
    admin_key, node_key = new_private_key(), new_private_key()

    def fresh_chain(name: str, contributions: list[str]) -> tuple[int, AuditLedger]:
        proc = start_anvil(port, tmp_path / f"{name}.json", tmp_path / f"{name}.log", die_with_parent=True)
        rpc = proc.rpc_url
        for key in (admin_key, node_key):
            send_ether(rpc, ANVIL_FUNDER_KEY, account_address(key), 10**19)
        admin_handle = AuditLedger.deploy(rpc, admin_key)
        admin_handle.register_node(account_address(node_key), b"\x00\x25" + name.encode(), 100)
        node = AuditLedger(rpc, admin_handle.address, node_key)
        for round_, name_ in enumerate(contributions, start=1):
            node.record_contribution(delta(name_), BASE, round_, 1, ROOT, 0.0)
        return proc.pid, AuditLedger(rpc, admin_handle.address, deployment_block=admin_handle.deployment_block)

    pid, reader = fresh_chain("first", ["old-1", "old-2", "old-3"])
    index = Index(tmp_path / "explorer.sqlite", reader)
    try:
        first = index.sync()
    finally:
        stop_anvil(pid)
    pid, second_reader = fresh_chain("second", [f"new-{i}" for i in range(1, 7)])
    try:
        assert second_reader.address == reader.address  # the same contract address on the new chain
        assert second_reader.block_number() > first.indexed_block  # grown past the indexed block
        status = index.sync()
    finally:
        stop_anvil(pid)
    db = index.connect()

    assert first.reindexed == 0 and status.reindexed == 1
    assert status.lag_blocks == 0 and status.head_block > first.head_block
    assert queries.overview(db)["totals"]["contributions"] == 6
    assert queries.contribution(db, h(delta("old-1"))) is None
    assert queries.contribution(db, h(delta("new-1"))) is not None
    db.close()
    index.close()
