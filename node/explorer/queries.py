"""The explorer's read side: pure functions over an index connection (`Index.connect`).

Each returns plain JSON-ready values (hex 0x-prefixed lower case, ints, epsilon as a
float = micro-epsilon / 1e6): they ARE the /api/ payloads and the pages' template
contexts, one source of truth. Malformed input (not hex, wrong length, unknown sort)
raises ValueError with a message the app shows as a 400; an unknown hash or address is
None (a 404). Nothing here touches the chain.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import asdict
from typing import Any

import base58

from node.explorer.index import read_status

__all__ = ["contribution", "node_page", "overview", "search", "since", "subject"]

EPSILON_SCALE = 1_000_000
WITHDRAWALS_SHOWN = 200
SINCE_LIMIT = 100
MAX_PER_PAGE = 500
SORTS = {"round": "round", "block": "seq", "sample_count": "sample_count", "epsilon": "epsilon_micros"}
ORDERS = ("asc", "desc")

_HEX = re.compile(r"^0x[0-9a-f]*$")

_CONTRIBUTION_COLUMNS = (
    "seq, delta_hash, node, round, base_hash, sample_count, data_root, epsilon_micros, block, tx_hash"
)
_NODE_COLUMNS = (
    "address, peer_id, peer_id_text, registered_block, revoked_block, sample_cap, budget_micros, "
    "spent_micros, contributions, last_round, last_block"
)


# ------------------------------------------------------------------ input checks


def _hex(text: str, nbytes: int, what: str) -> str:
    """`text` as 0x + 2*nbytes lower-case hex digits, or ValueError saying why."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string of hex digits")
    value = text.strip().lower()
    if not value.startswith("0x"):
        value = "0x" + value
    if not _HEX.match(value):
        raise ValueError(f"{what} must be hex digits (0-9, a-f), optionally 0x-prefixed")
    if len(value) != 2 + 2 * nbytes:
        raise ValueError(f"{what} must be {2 * nbytes} hex digits ({nbytes} bytes), got {len(value) - 2}")
    return value


def _hash32(text: str, what: str) -> str:
    return _hex(text, 32, what)


def _address(text: str) -> str:
    return _hex(text, 20, "address")


# ------------------------------------------------------------------ row shapes


def _epsilon(micros: int | None) -> float:
    return (micros or 0) / EPSILON_SCALE


def _node(row: sqlite3.Row) -> dict[str, Any]:
    budget, spent = row["budget_micros"] or 0, row["spent_micros"] or 0
    return {
        "address": row["address"],
        "peer_id": row["peer_id"],
        "peer_id_text": row["peer_id_text"],
        "active": row["revoked_block"] is None,
        "registered_block": row["registered_block"],
        "revoked_block": row["revoked_block"],
        "contributions": row["contributions"],
        "last_round": int(row["last_round"]),
        "last_block": row["last_block"],
        "sample_cap": row["sample_cap"],
        "epsilon_budget": _epsilon(budget),
        "epsilon_spent": _epsilon(spent),
        # None: a zero budget (the node may record only without DP); may exceed 1.0
        # when the admin lowered the budget below what was spent.
        "budget_fraction": spent / budget if budget else None,
    }


def _contribution(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "delta_hash": row["delta_hash"],
        "node": row["node"],
        "round": int(row["round"]),
        "base_hash": row["base_hash"],
        "sample_count": row["sample_count"],
        "data_root": row["data_root"],
        "epsilon": _epsilon(row["epsilon_micros"]),
        "epsilon_micros": row["epsilon_micros"],
        "block": row["block"],
        "tx_hash": row["tx_hash"],
    }


def _withdrawal(row: sqlite3.Row) -> dict[str, Any]:
    by_token = bool(row["by_token"])
    return {
        "seq": row["seq"],
        "subject": row["subject"],
        "by": row["sender"],
        "by_token": by_token,
        # By token, the chain does not say whose patient it was; by commitment, the
        # sender is the custodian node.
        "custodian": None if by_token else row["sender"],
        "block": row["block"],
        "tx_hash": row["tx_hash"],
    }


def _status(db: sqlite3.Connection) -> dict[str, Any]:
    return asdict(read_status(db))


def _rows(db: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    cursor = db.execute(sql, params)
    cursor.row_factory = sqlite3.Row  # type: ignore[assignment]
    return list(cursor.fetchall())


def _tuples(db: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Plain tuples, whatever the connection's row factory (bulk rows: cheaper)."""
    cursor = db.execute(sql, params)
    cursor.row_factory = None
    return list(cursor.fetchall())


def _row(db: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
    rows = _rows(db, sql, params)
    return rows[0] if rows else None


def _count(db: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    return int(db.execute(sql, params).fetchone()[0])


# ---------------------------------------------------------------------- pages


def overview(db: sqlite3.Connection) -> dict[str, Any]:
    """Network health, per-round chart data, the withdrawal timeline and the index status."""
    nodes = [_node(row) for row in _rows(db, f"SELECT {_NODE_COLUMNS} FROM nodes ORDER BY registered_block, address")]
    counts = _tuples(db, "SELECT round, node, COUNT(*) FROM contributions GROUP BY round, node")
    counts = [(int(r), node, count) for r, node, count in counts]
    rounds = sorted({r for r, _, _ in counts})
    at = {r: i for i, r in enumerate(rounds)}
    series: dict[str, list[int]] = {n["address"]: [0] * len(rounds) for n in nodes}
    for round_, node, count in counts:
        if node not in series:
            series[node] = [0] * len(rounds)
        series[node][at[round_]] = count
    withdrawals = [
        _withdrawal(row)
        for row in _rows(db, "SELECT * FROM withdrawals ORDER BY seq DESC LIMIT ?", (WITHDRAWALS_SHOWN,))
    ]
    return {
        "status": _status(db),
        "nodes": nodes,
        "totals": _totals(db),
        "per_round": {"rounds": rounds, "series": series},
        "withdrawals": withdrawals,
    }


def _totals(db: sqlite3.Connection) -> dict[str, int]:
    return {
        "contributions": _count(db, "SELECT COUNT(*) FROM contributions"),
        "nodes": _count(db, "SELECT COUNT(*) FROM nodes"),
        "active_nodes": _count(db, "SELECT COUNT(*) FROM nodes WHERE revoked_block IS NULL"),
        "withdrawals": _count(db, "SELECT COUNT(*) FROM withdrawals"),
    }


def node_page(
    db: sqlite3.Connection,
    address: str,
    *,
    page: int = 1,
    per_page: int = 50,
    sort: str = "round",
    order: str = "desc",
) -> dict[str, Any] | None:
    """One node: a page of its contributions (sorted), its epsilon curve, its cap and
    budget history. None when no node was registered at `address`."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be asc or desc, got {order!r}")
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be a whole number >= 1, got {page!r}")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be a whole number from 1 to {MAX_PER_PAGE}, got {per_page!r}")
    node = _address(address)
    row = _row(db, f"SELECT {_NODE_COLUMNS} FROM nodes WHERE address = ?", (node,))
    if row is None:
        return None
    total = _count(db, "SELECT COUNT(*) FROM contributions WHERE node = ?", (node,))
    column = SORTS[sort]
    tie = "" if column == "seq" else f", seq {order}"
    rows = _rows(
        db,
        f"SELECT {_CONTRIBUTION_COLUMNS} FROM contributions WHERE node = ? "
        f"ORDER BY {column} {order}{tie} LIMIT ? OFFSET ?",
        (node, per_page, (page - 1) * per_page),
    )
    curve = _tuples(
        db, "SELECT block, SUM(epsilon_micros) OVER (ORDER BY seq) FROM contributions WHERE node = ? ORDER BY seq",
        (node,),
    )
    caps = _rows(db, "SELECT sample_cap, block, tx_hash FROM cap_changes WHERE node = ? ORDER BY seq", (node,))
    budgets = _rows(db, "SELECT budget_micros, block, tx_hash FROM budget_changes WHERE node = ? ORDER BY seq", (node,))
    return {
        "node": _node(row),
        "contributions": [_contribution(r) for r in rows],
        "page": page,
        "pages": max(1, -(-total // per_page)),
        "per_page": per_page,
        "total": total,
        "sort": sort,
        "order": order,
        "epsilon_curve": [[block, _epsilon(cumulative)] for block, cumulative in curve],
        "cap_history": [{"sample_cap": r["sample_cap"], "block": r["block"], "tx_hash": r["tx_hash"]} for r in caps],
        "budget_history": [
            {"epsilon_budget": _epsilon(r["budget_micros"]), "block": r["block"], "tx_hash": r["tx_hash"]}
            for r in budgets
        ],
        "revoked_block": row["revoked_block"],
    }


def contribution(db: sqlite3.Connection, delta_hash: str) -> dict[str, Any] | None:
    """One recorded contribution with its author's peer ID and its base model's origin."""
    wanted = _hash32(delta_hash, "delta hash")
    row = _row(db, f"SELECT {_CONTRIBUTION_COLUMNS} FROM contributions WHERE delta_hash = ?", (wanted,))
    if row is None:
        return None
    result = _contribution(row)
    author = _row(db, "SELECT peer_id, peer_id_text FROM nodes WHERE address = ?", (row["node"],))
    genesis = _row(db, "SELECT model_hash FROM genesis ORDER BY seq LIMIT 1")
    base = _row(db, "SELECT delta_hash FROM contributions WHERE delta_hash = ?", (row["base_hash"],))
    result.update(
        node_peer_id=author["peer_id"] if author else None,
        node_peer_id_text=author["peer_id_text"] if author else None,
        base_is_genesis=genesis is not None and genesis["model_hash"] == row["base_hash"],
        base_contribution=base["delta_hash"] if base else None,
    )
    return result


def subject(db: sqlite3.Connection, commitment: str) -> dict[str, Any]:
    """Whether a subject is withdrawn, by whom, and how many contributions each bound
    node recorded from the withdrawal's block on (what its proofs must cover).

    A withdrawal by commitment binds its sender (the custodian); one by token binds
    every node, so every node that recorded since then is listed.
    """
    wanted = _hash32(commitment, "subject commitment")
    withdrawals = [_withdrawal(r) for r in _rows(db, "SELECT * FROM withdrawals WHERE subject = ? ORDER BY seq", (wanted,))]
    binding_from: dict[str, int] = {}
    token_block = min((w["block"] for w in withdrawals if w["by_token"]), default=None)
    if token_block is not None:
        for (node,) in db.execute("SELECT DISTINCT node FROM contributions WHERE block >= ?", (token_block,)):
            binding_from[node] = token_block
    for w in withdrawals:
        if not w["by_token"]:
            binding_from[w["by"]] = min(w["block"], binding_from.get(w["by"], w["block"]))
    after = {
        node: _count(db, "SELECT COUNT(*) FROM contributions WHERE node = ? AND block >= ?", (node, block))
        for node, block in sorted(binding_from.items())
    }
    return {
        "subject": wanted,
        "withdrawn": bool(withdrawals),
        "withdrawals": withdrawals,
        "contributions_after": after,
    }


def search(db: sqlite3.Connection, text: str) -> str | None:
    """The URL path of what `text` names (a delta hash, subject commitment, transaction
    hash, address or peer ID), or None when the index knows nothing by that name."""
    query = text.strip() if isinstance(text, str) else ""
    if not query:
        raise ValueError("search for a delta hash, address, peer ID, subject commitment or transaction hash")
    if len(query) > 200:
        raise ValueError("search text is too long (at most 200 characters)")
    body = query.lower().removeprefix("0x")
    if re.fullmatch(r"[0-9a-f]{64}", body):
        return _search_hash32("0x" + body, db)
    if re.fullmatch(r"[0-9a-f]{40}", body):
        node = "0x" + body
        return f"/node/{node}" if _row(db, "SELECT 1 FROM nodes WHERE address = ?", (node,)) else None
    return _search_peer_id(db, query)


def _search_hash32(value: str, db: sqlite3.Connection) -> str | None:
    hit = _row(db, "SELECT delta_hash FROM contributions WHERE delta_hash = ? OR tx_hash = ?", (value, value))
    if hit is not None:
        return f"/contribution/{hit['delta_hash']}"
    hit = _row(db, "SELECT subject FROM withdrawals WHERE subject = ? OR tx_hash = ?", (value, value))
    if hit is not None:
        return f"/subject/{hit['subject']}"
    for table in ("cap_changes", "budget_changes", "revocations"):
        hit = _row(db, f"SELECT node FROM {table} WHERE tx_hash = ?", (value,))
        if hit is not None:
            return f"/node/{hit['node']}"
    return None


def _search_peer_id(db: sqlite3.Connection, query: str) -> str | None:
    candidates = {query}
    try:
        candidates.add("0x" + base58.b58decode(query).hex())
    except ValueError:
        pass
    for value in candidates:
        hit = _row(db, "SELECT address FROM nodes WHERE peer_id_text = ? OR peer_id = ?", (value, value))
        if hit is not None:
            return f"/node/{hit['address']}"
    return None


def since(db: sqlite3.Connection, seq: int) -> dict[str, Any]:
    """What was indexed after event number `seq` (live updates): new contributions and
    withdrawals (at most 100 each), the totals and the status. Poll again with the
    returned "seq". "reset" is True when `seq` is past the index (it was rebuilt after a
    chain reset): the client should reload."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"seq must be a whole number >= 0, got {seq!r}")
    status = _status(db)
    latest = status["events"]
    if seq > latest:
        return {"seq": latest, "reset": True, "contributions": [], "withdrawals": [],
                "totals": _totals(db), "status": status}
    rows = _rows(
        db, f"SELECT {_CONTRIBUTION_COLUMNS} FROM contributions WHERE seq > ? ORDER BY seq LIMIT ?",
        (seq, SINCE_LIMIT),
    )
    withdrawals = _rows(db, "SELECT * FROM withdrawals WHERE seq > ? ORDER BY seq LIMIT ?", (seq, SINCE_LIMIT))
    truncated = len(rows) == SINCE_LIMIT or len(withdrawals) == SINCE_LIMIT
    upto = min(r[-1]["seq"] for r in (rows, withdrawals) if len(r) == SINCE_LIMIT) if truncated else latest
    return {
        "seq": upto,
        "reset": False,
        "contributions": [_contribution(r) for r in rows if r["seq"] <= upto],
        "withdrawals": [_withdrawal(r) for r in withdrawals if r["seq"] <= upto],
        "totals": _totals(db),
        "status": status,
    }
