"""The explorer's index: AuditLedger events copied incrementally into SQLite.

Pages read the index, never the chain. `Index.sync` reads the events of the blocks
mined since the last sync (`AuditLedger.events`, one paged log query) and writes them,
the nodes' running totals and the new position in ONE transaction: a reader sees a
whole sync or none of it, and a crash loses nothing (the next sync resumes from the
last committed block). WAL mode lets the web app read while a sync writes.

A reset chain (a devnet restarted, anvil_reset, a reorg past our position) is detected
before reading: the hash of block 0, the chain id or the contract differ from the
indexed ones, the head is below the indexed block, or the indexed block's hash changed.
The last check matters most: anvil's block 0 is the same on every start (measured), and
a devnet redeployed by the same admin key has its contract at the same address.
The index is then rebuilt from the deployment block, in the same transaction, so
readers keep the old index until the new one is complete.

Hashes and addresses are stored as 0x-prefixed lower-case hex text (what the pages
and the JSON API show); epsilons as the contract's integer micro-epsilon.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import ContractNotFound
from contracts.ledger import AuditLedger, epsilon_to_micros
from contracts.records import (
    ConsentWithdrawn,
    ContributionRecorded,
    GenesisModelSet,
    LedgerEvent,
    NodeRegistered,
    NodeRevocation,
    PrivacyBudgetSet,
    SampleCapSet,
)
from gossip.identity import peer_id_from_bytes

__all__ = ["ChainReset", "Index", "IndexStatus", "read_status"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    address TEXT PRIMARY KEY, peer_id TEXT NOT NULL, peer_id_text TEXT NOT NULL,
    registered_block INTEGER, registered_tx TEXT, revoked_block INTEGER,
    sample_cap INTEGER, budget_micros INTEGER, spent_micros INTEGER NOT NULL DEFAULT 0,
    contributions INTEGER NOT NULL DEFAULT 0, last_round NOT NULL DEFAULT 0,
    last_block INTEGER);
CREATE INDEX IF NOT EXISTS nodes_peer_id ON nodes (peer_id);
CREATE INDEX IF NOT EXISTS nodes_peer_id_text ON nodes (peer_id_text);
CREATE INDEX IF NOT EXISTS nodes_registered_tx ON nodes (registered_tx);
CREATE TABLE IF NOT EXISTS contributions (
    seq INTEGER PRIMARY KEY, delta_hash TEXT NOT NULL UNIQUE, node TEXT NOT NULL,
    round NOT NULL, base_hash TEXT NOT NULL, sample_count INTEGER NOT NULL,
    data_root TEXT NOT NULL, epsilon_micros INTEGER NOT NULL, block INTEGER NOT NULL,
    tx_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS contributions_node_round ON contributions (node, round);
CREATE INDEX IF NOT EXISTS contributions_node_block ON contributions (node, block);
CREATE INDEX IF NOT EXISTS contributions_block ON contributions (block);
CREATE INDEX IF NOT EXISTS contributions_tx ON contributions (tx_hash);
CREATE INDEX IF NOT EXISTS contributions_round ON contributions (round, node);
CREATE TABLE IF NOT EXISTS withdrawals (
    seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, sender TEXT NOT NULL,
    by_token INTEGER NOT NULL, block INTEGER NOT NULL, tx_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS withdrawals_subject ON withdrawals (subject);
CREATE INDEX IF NOT EXISTS withdrawals_tx ON withdrawals (tx_hash);
CREATE TABLE IF NOT EXISTS cap_changes (
    seq INTEGER PRIMARY KEY, node TEXT NOT NULL, sample_cap INTEGER NOT NULL,
    block INTEGER NOT NULL, tx_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cap_changes_node ON cap_changes (node);
CREATE INDEX IF NOT EXISTS cap_changes_tx ON cap_changes (tx_hash);
CREATE TABLE IF NOT EXISTS budget_changes (
    seq INTEGER PRIMARY KEY, node TEXT NOT NULL, budget_micros INTEGER NOT NULL,
    block INTEGER NOT NULL, tx_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS budget_changes_node ON budget_changes (node);
CREATE INDEX IF NOT EXISTS budget_changes_tx ON budget_changes (tx_hash);
CREATE TABLE IF NOT EXISTS revocations (
    seq INTEGER PRIMARY KEY, node TEXT NOT NULL, block INTEGER NOT NULL, tx_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS revocations_tx ON revocations (tx_hash);
CREATE TABLE IF NOT EXISTS genesis (
    seq INTEGER PRIMARY KEY, model_hash TEXT NOT NULL, block INTEGER NOT NULL, tx_hash TEXT NOT NULL);
"""
_DATA_TABLES = ("nodes", "contributions", "withdrawals", "cap_changes", "budget_changes", "revocations", "genesis")


class ChainReset(Exception):
    """The chain is not the one indexed (internal: `Index.sync` reindexes)."""


@dataclass(frozen=True)
class IndexStatus:
    """Where the index stands; `events` is also the sequence number of the last event."""

    head_block: int
    indexed_block: int
    lag_blocks: int
    chain_id: int
    contract: str
    genesis_hash: str
    events: int
    reindexed: int


def read_status(db: sqlite3.Connection) -> IndexStatus:
    """The status kept in `meta` (any connection: the writer's or a reader's)."""
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    head, indexed = int(meta.get("head_block", 0)), int(meta.get("indexed_block", 0))
    return IndexStatus(
        head_block=head,
        indexed_block=indexed,
        lag_blocks=max(0, head - indexed),
        chain_id=int(meta.get("chain_id", 0)),
        contract=meta.get("contract", ""),
        genesis_hash=meta.get("genesis_hash", ""),
        events=int(meta.get("events", 0)),
        reindexed=int(meta.get("reindexed", 0)),
    )


def peer_id_text(raw: bytes) -> str:
    """How a registered peer ID reads: base58 when it is a libp2p multihash (identity
    or sha2-256 of the right length), else its bytes as text (hostile input included:
    the pages escape it)."""
    if len(raw) >= 2 and raw[0] in (0x00, 0x12) and len(raw) == raw[1] + 2:
        return str(peer_id_from_bytes(raw))
    return raw.decode("utf-8", errors="replace")


class Index:
    """The SQLite index of one AuditLedger. `sync` is blocking and serialised (trio
    callers run it in a thread); readers use their own `connect()` connections."""

    def __init__(self, db_path: Path, ledger: AuditLedger) -> None:
        self._path = Path(db_path)
        self._ledger = ledger
        self._lock = threading.Lock()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._meta("schema_version", SCHEMA_VERSION) if self._has_meta() else SCHEMA_VERSION
        if version != SCHEMA_VERSION:  # an index of another layout: it is only a cache
            log.info("index %s has schema %s, not %s: rebuilding it", self._path, version, SCHEMA_VERSION)
            with self._transaction():
                for table in (*_DATA_TABLES, "meta"):
                    self._db.execute(f"DROP TABLE IF EXISTS {table}")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        self._db.close()

    def connect(self) -> sqlite3.Connection:
        """A read-only connection for the web app (rows as `sqlite3.Row`)."""
        db = sqlite3.connect(f"{self._path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA query_only=1")
        return db

    def status(self) -> IndexStatus:
        return read_status(self._db)

    def sync(self, max_blocks: int | None = None) -> IndexStatus:
        """Index the blocks mined since the last sync (at most `max_blocks` of them);
        rebuild the index first if the chain was reset. Chain errors propagate
        (ChainUnavailable, LedgerError): the index stays as it was."""
        if max_blocks is not None and max_blocks < 1:
            raise ValueError(f"max_blocks must be at least 1, got {max_blocks}")
        with self._lock:
            ledger = self._ledger
            head = ledger.block("latest")
            identity = {
                "chain_id": str(ledger.chain_id),
                "contract": ledger.address.lower(),
                "genesis_hash": ledger.block(0).hash.lower(),
            }
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            rebuild = "genesis_hash" not in meta
            if not rebuild:
                try:
                    self._check_same_chain(meta, identity, head.number)
                except ChainReset as reset:
                    log.warning("chain reset detected (%s): reindexing from block %d",
                                reset, ledger.deployment_block)
                    rebuild = True
            if rebuild and not ledger.has_code():
                raise ContractNotFound(f"no AuditLedger code at {ledger.address} on this chain")
            start = self._start_block() if rebuild else int(meta["indexed_block"]) + 1
            end = head.number if max_blocks is None else min(head.number, start + max_blocks - 1)
            events = ledger.events(from_block=start, to_block=end) if start <= end else []
            end = max(end, start - 1)
            end_hash = (head if end == head.number else ledger.block(end)).hash.lower()
            with self._transaction():
                if rebuild:
                    self._clear(meta, identity)
                seq = self._write(events, int(self._meta("events", "0")))
                self._set_meta(events=seq, indexed_block=end, indexed_hash=end_hash, head_block=head.number)
            return self.status()

    # ---------------------------------------------------------------- internals

    def _check_same_chain(self, meta: dict[str, str], identity: dict[str, str], head: int) -> None:
        for key, value in identity.items():
            if meta.get(key) != value:
                raise ChainReset(f"{key} was {meta.get(key)}, is {value}")
        indexed = int(meta["indexed_block"])
        if head < indexed:
            raise ChainReset(f"head block {head} is below the indexed block {indexed}")
        if meta.get("indexed_hash") and self._ledger.block(indexed).hash.lower() != meta["indexed_hash"]:
            raise ChainReset(f"block {indexed} has another hash than when it was indexed")

    def _start_block(self) -> int:
        """The first block to read: the deployment block (block 0 holds no contract)."""
        return max(1, self._ledger.deployment_block)

    def _clear(self, meta: dict[str, str], identity: dict[str, str]) -> None:
        for table in _DATA_TABLES:
            self._db.execute(f"DELETE FROM {table}")
        reindexed = int(meta.get("reindexed", 0)) + (1 if "genesis_hash" in meta else 0)
        self._set_meta(events=0, reindexed=reindexed, indexed_hash="", **identity)

    def _has_meta(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is not None

    def _meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def _set_meta(self, **values: Any) -> None:
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _write(self, events: Iterable[LedgerEvent], seq: int) -> int:
        """Insert `events` (chain order) numbered from `seq` + 1; update the nodes'
        running totals. Returns the last sequence number."""
        rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _DATA_TABLES}
        totals: dict[str, list[int]] = {}  # node -> [count, spent, last round, last block]
        for event in events:
            seq += 1
            tx, block = event.tx_hash.lower(), event.block_number
            if isinstance(event, ContributionRecorded):
                node, micros = event.node.lower(), epsilon_to_micros(event.epsilon_spent)
                rows["contributions"].append((
                    seq, _hex(event.delta_hash), node, stored_uint64(event.round), _hex(event.base_model_hash),
                    event.sample_count, _hex(event.data_root), micros, block, tx,
                ))
                total = totals.setdefault(node, [0, 0, 0, 0])
                total[0] += 1
                total[1] += micros
                total[2] = max(total[2], event.round)
                total[3] = block
            elif isinstance(event, ConsentWithdrawn):
                rows["withdrawals"].append((seq, _hex(event.subject), event.by.lower(), int(event.by_token), block, tx))
            elif isinstance(event, NodeRegistered):
                rows["nodes"].append((event.node.lower(), _hex(event.peer_id), peer_id_text(event.peer_id), block, tx))
            elif isinstance(event, SampleCapSet):
                rows["cap_changes"].append((seq, event.node.lower(), event.sample_cap, block, tx))
            elif isinstance(event, PrivacyBudgetSet):
                rows["budget_changes"].append((seq, event.node.lower(), event.epsilon_budget_micros, block, tx))
            elif isinstance(event, NodeRevocation):
                rows["revocations"].append((seq, event.node.lower(), block, tx))
            elif isinstance(event, GenesisModelSet):
                rows["genesis"].append((seq, _hex(event.model_hash), block, tx))
        db = self._db
        db.executemany(
            "INSERT INTO nodes (address, peer_id, peer_id_text, registered_block, registered_tx) "
            "VALUES (?, ?, ?, ?, ?)", rows.pop("nodes"),
        )
        for table, table_rows in rows.items():
            if table_rows:
                marks = ", ".join("?" * len(table_rows[0]))
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
        db.executemany(
            "UPDATE nodes SET contributions = contributions + ?, spent_micros = spent_micros + ?, "
            "last_round = MAX(last_round, ?), last_block = ? WHERE address = ?",
            [(count, spent, stored_uint64(last), block, node) for node, (count, spent, last, block) in totals.items()],
        )
        # The latest cap / budget / revocation of each node, in chain order.
        db.executemany("UPDATE nodes SET sample_cap = ? WHERE address = ?",
                       [(cap, node) for _, node, cap, _, _ in rows["cap_changes"]])
        db.executemany("UPDATE nodes SET budget_micros = ? WHERE address = ?",
                       [(budget, node) for _, node, budget, _, _ in rows["budget_changes"]])
        db.executemany("UPDATE nodes SET revoked_block = ? WHERE address = ?",
                       [(block, node) for _, node, block, _ in rows["revocations"]])
        return seq


def stored_uint64(value: int) -> int | str:
    """A uint64 as the index stores it: an INTEGER when SQLite's signed 64 bits hold it,
    else 20 zero-padded digits (TEXT; columns without a type keep it as given). SQLite
    orders every INTEGER before every TEXT, and such TEXTs among themselves by their
    digits, so ORDER BY and MAX keep the numbers' order; `int()` reads either back."""
    return value if value < 2**63 else f"{value:020d}"


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()
