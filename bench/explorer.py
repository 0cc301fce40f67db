"""Audit explorer benchmark on a real anvil: indexing and page response times.

Fills a fresh anvil with `--records` contributions from `--nodes` nodes (each node
pipelines its transactions, all nodes at once), a few withdrawals, a cap and a budget
change, then measures:

- `index_seconds_10k`: a new index synced from block 0 (one `Index.sync`), and apart
  the log read alone (eth_getLogs + decoding) to show where the time goes;
- incremental lag: one more record mined, then the time `sync` takes to have it
  (and an idle sync, nothing new);
- over HTTP against `medgossip explorer` (a subprocess on the synced index, syncing
  every `--poll` s as users run it): p50 / p95 of the overview, a node page, a
  contribution page and a subject page, and of their /api/ twins, /api/since and
  /api/search (`page_p95_ms_max`: the worst p95);
- new block to open page: a record mined (at a random phase of the explorer's poll),
  then polling /api/since until it is there. The page's own poll (app.js, every
  second) comes on top: `on_page_typical_ms` adds half of it, `on_page_worst_ms` all.

    .venv/bin/python bench/explorer.py [--records 10000] [--nodes 8] [--samples 200]
    .venv/bin/python bench/explorer.py --index-only     # no web server

Prints a table and writes bench/results/explorer.json. Goals (issue 13): p95 under
150 ms for every page, 10,000 contributions indexed in under 30 s, a new block on an
open page within 2 s. Benchmarks report; they do not pass or fail.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eth_utils import keccak  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from contracts.ledger import AuditLedger, account_address, new_private_key, send_ether  # noqa: E402
from devnet.anvil import free_port, start_anvil, stop_anvil  # noqa: E402
from devnet.manage import ANVIL_FUNDER_KEY  # noqa: E402
from gossip.identity import generate_secret, peer_id_bytes_from_secret  # noqa: E402
from node.explorer import queries  # noqa: E402
from node.explorer.index import Index  # noqa: E402
from node.explorer.server import ServeOptions  # noqa: E402

RESULTS = REPO / "bench" / "results" / "explorer.json"
IN_FLIGHT = 200
"""Transactions sent and not yet awaited, all nodes together: more at once let anvil's
pool silently drop a run of nonces (bench/ledger.py measured it at 10,000; here 1,600
in flight stalled a node)."""
RECORD_GAS = 90_000
SAMPLE_CAP = 1_024
EPSILON_BUDGET = 100_000.0
PAGE_POLL_S = 1.0
"""How often an open page asks /api/since (app.js)."""
GOALS = {"page_p95_ms": 150.0, "index_seconds_10k": 30.0, "new_block_on_page_ms": 2000.0}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 2), "p95": round(percentile(values, 0.95), 2),
            "max": round(max(values), 2), "samples": len(values)}


# --------------------------------------------------------------------------- fill


class Chain:
    """The deployed ledger, its admin and its nodes (each node its own handle)."""

    def __init__(self, rpc_url: str, node_count: int) -> None:
        self.rpc_url = rpc_url
        admin_key = new_private_key()
        send_ether(rpc_url, ANVIL_FUNDER_KEY, account_address(admin_key), 1_000 * 10**18)
        self.admin = AuditLedger.deploy(rpc_url, admin_key)
        self.genesis = keccak(b"bench-explorer-genesis")
        self.admin.set_genesis_model(self.genesis)
        self.nodes: list[AuditLedger] = []
        for _ in range(node_count):
            key = new_private_key()
            send_ether(rpc_url, ANVIL_FUNDER_KEY, account_address(key), 100 * 10**18)
            self.admin.register_node(account_address(key), peer_id_bytes_from_secret(generate_secret()),
                                     SAMPLE_CAP, epsilon_budget=EPSILON_BUDGET)
            self.nodes.append(AuditLedger(rpc_url, self.admin.address, key))
        self.next_round = [1] * node_count
        self.last_delta = [self.genesis] * node_count
        self.deltas: list[bytes] = []

    def reader(self) -> AuditLedger:
        return AuditLedger(self.rpc_url, self.admin.address, deployment_block=self.admin.deployment_block)

    def delta(self, who: int) -> tuple[bytes, bytes, int]:
        """The next (delta hash, base hash, round) of node `who`: each builds on its last."""
        round_ = self.next_round[who]
        delta_hash = keccak(f"explorer-{who}-{round_}".encode())
        base = self.last_delta[who]
        self.next_round[who] += 1
        self.last_delta[who] = delta_hash
        return delta_hash, base, round_

    def record_one(self, who: int) -> bytes:
        delta_hash, base, round_ = self.delta(who)
        self.nodes[who].record_contribution(delta_hash, base, round_, 64, keccak(delta_hash), 0.01)
        return delta_hash

    def fill(self, records: int) -> float:
        """`records` contributions shared by the nodes, each node pipelining its own in
        windows, all nodes at once; returns the seconds it took."""
        shares = [records // len(self.nodes) + (1 if i < records % len(self.nodes) else 0)
                  for i in range(len(self.nodes))]
        errors: list[BaseException] = []
        window = max(1, IN_FLIGHT // len(self.nodes))

        def run(who: int, count: int) -> None:
            try:
                node, last = self.nodes[who], ""
                for i in range(count):
                    delta_hash, base, round_ = self.delta(who)
                    last = node.submit_contribution(delta_hash, base, round_, 16 + round_ % 1000, keccak(delta_hash),
                                                    0.001 * (1 + round_ % 7), gas=RECORD_GAS)
                    self.deltas.append(delta_hash)
                    if (i + 1) % window == 0 or i + 1 == count:
                        node.wait_for(last, timeout=60)
            except BaseException as exc:  # reported after the join
                errors.append(exc)

        started = time.perf_counter()
        threads = [threading.Thread(target=run, args=(who, n)) for who, n in enumerate(shares)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return time.perf_counter() - started

    def admin_history(self, withdrawals: int) -> list[bytes]:
        """A cap and a budget change, and `withdrawals` consent withdrawals (one in five
        by token); returns the subject commitments."""
        self.admin.set_sample_cap(self.nodes[0].account or "", 2 * SAMPLE_CAP)
        self.admin.set_privacy_budget(self.nodes[0].account or "", 2 * EPSILON_BUDGET)
        subjects = []
        for i in range(withdrawals):
            secret = keccak(f"explorer-subject-{i}".encode())
            if i % 5 == 4:
                self.admin.withdraw_consent_with_token(secret)
                subjects.append(keccak(secret))
            else:
                self.nodes[i % len(self.nodes)].withdraw_consent(secret)
                subjects.append(secret)
        return subjects


# -------------------------------------------------------------------------- index


def measure_index(chain: Chain, db_path: Path, samples: int) -> dict[str, Any]:
    reader = chain.reader()
    t0 = time.perf_counter()
    events = reader.events(from_block=0)
    read_s = time.perf_counter() - t0

    index = Index(db_path, reader)
    t0 = time.perf_counter()
    status = index.sync()
    index_s = time.perf_counter() - t0

    db = index.connect()
    incremental, idle = [], []
    for i in range(samples):
        delta_hash = chain.record_one(i % len(chain.nodes))
        t0 = time.perf_counter()
        index.sync()
        incremental.append((time.perf_counter() - t0) * 1000)
        if queries.contribution(db, "0x" + delta_hash.hex()) is None:
            raise RuntimeError("the incremental sync missed a mined record")
        t0 = time.perf_counter()
        index.sync()
        idle.append((time.perf_counter() - t0) * 1000)
    db.close()
    index.close()
    return {
        "index_seconds_10k": round(index_s, 2),
        "index": {
            "seconds": round(index_s, 2),
            "log_read_seconds": round(read_s, 2),
            "events": status.events,
            "blocks": status.indexed_block,
            "events_per_s": round(status.events / index_s, 0),
            "db_bytes": db_path.stat().st_size,
        },
        "incremental_sync_ms": summary(incremental),
        "idle_sync_ms": summary(idle),
    }


# --------------------------------------------------------------------------- http


class Client:
    """Keep-alive HTTP/1.1 GETs against the explorer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            raise
        return response.status, response.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)


def start_explorer(chain: Chain, db_path: Path, port: int, poll: float, log_file: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "node.cli", "explorer", "--rpc", chain.rpc_url, "--contract", chain.admin.address,
        "--db", str(db_path), "--port", str(port), "--poll", str(poll),
    ]
    with open(log_file, "ab") as log:
        return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def wait_until_serving(client: Client, proc: subprocess.Popen[bytes], log_file: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the explorer exited ({proc.returncode}): {log_file.read_text()[-2000:]}")
        try:
            if client.get("/api/overview")[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the explorer did not answer within {timeout:.0f} s: {log_file.read_text()[-2000:]}")


def measure_http(chain: Chain, client: Client, subjects: list[bytes], samples: int) -> dict[str, Any]:
    rng = random.Random(13)
    addresses = [(n.account or "").lower() for n in chain.nodes]
    deltas = ["0x" + d.hex() for d in chain.deltas]
    commitments = ["0x" + s.hex() for s in subjects]
    latest = client.json("/api/overview")["status"]["events"]
    sorts = ["", "?sort=epsilon&order=asc&page=5", "?sort=sample_count&order=desc&page=2", "?sort=block&page=20"]
    paths: dict[str, Callable[[], str]] = {
        "overview": lambda: "/",
        "node": lambda: f"/node/{rng.choice(addresses)}{rng.choice(sorts)}",
        "contribution": lambda: f"/contribution/{rng.choice(deltas)}",
        "subject": lambda: f"/subject/{rng.choice(commitments)}",
        "api_overview": lambda: "/api/overview",
        "api_node": lambda: f"/api/node/{rng.choice(addresses)}{rng.choice(sorts)}",
        "api_contribution": lambda: f"/api/contribution/{rng.choice(deltas)}",
        "api_subject": lambda: f"/api/subject/{rng.choice(commitments)}",
        "api_since": lambda: f"/api/since?seq={max(0, latest - 20)}",
        "api_search": lambda: f"/api/search?q={rng.choice(deltas)}",
    }
    results: dict[str, Any] = {}
    for name, path in paths.items():
        for _ in range(5):  # warm-up: templates compiled, pages cached by the OS
            client.get(path())
        times = []
        for _ in range(samples):
            target = path()
            t0 = time.perf_counter()
            status, body = client.get(target)
            times.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"GET {target}: {status} {body[:200]!r}")
        results[name] = summary(times) | {"bytes": len(body)}
    return results


def measure_live(chain: Chain, client: Client, samples: int, poll: float) -> list[float]:
    """ms from a record mined to its appearance in /api/since (polled every 20 ms).

    Each record waits a random part of the explorer's poll interval first: recording
    right after seeing the previous one would always land just after a sync (the
    worst phase), measuring the interval rather than the explorer."""
    rng = random.Random(2)
    delays = []
    for i in range(samples):
        seq = client.json("/api/overview")["status"]["events"]
        time.sleep(rng.uniform(0, poll))
        delta_hash = "0x" + chain.record_one(i % len(chain.nodes)).hex()
        t0 = time.perf_counter()
        while True:
            news = client.json(f"/api/since?seq={seq}")
            if any(c["delta_hash"] == delta_hash for c in news["contributions"]):
                break
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"{delta_hash} not on /api/since after 30 s")
            time.sleep(0.02)
        delays.append((time.perf_counter() - t0) * 1000)
    return delays


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--withdrawals", type=int, default=50)
    parser.add_argument("--samples", type=int, default=200, help="HTTP requests per page")
    parser.add_argument("--sync-samples", type=int, default=20, help="incremental syncs measured")
    parser.add_argument("--live-samples", type=int, default=20, help="records followed to /api/since")
    parser.add_argument("--poll", type=float, default=ServeOptions.poll,
                        help="the explorer's sync interval (s; default: the explorer's own)")
    parser.add_argument("--index-only", action="store_true", help="no web server: indexing figures only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory(prefix="medgossip-bench-explorer-") as tmp:
        work = Path(tmp)
        anvil = start_anvil(free_port(), work / "state.json", work / "anvil.log", state_interval=None,
                            die_with_parent=True)
        try:
            results = run(anvil.rpc_url, work, args, console)
        finally:
            stop_anvil(anvil.pid)

    results["environment"] = {"python": platform.python_version(), "machine": platform.machine(),
                              "anvil_state_interval": None, "client": "http.client keep-alive, one at a time"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_results(results, console)
    console.print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


def run(rpc_url: str, work: Path, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    console.print(f"filling anvil: {args.records:,} contributions from {args.nodes} nodes ...")
    chain = Chain(rpc_url, args.nodes)
    fill_s = chain.fill(args.records)
    subjects = chain.admin_history(args.withdrawals)
    console.print(f"filled in {fill_s:.0f} s; indexing ...")
    db_path = work / "explorer.sqlite"
    results: dict[str, Any] = {
        "records": args.records,
        "nodes": args.nodes,
        "withdrawals": args.withdrawals,
        "fill": {"seconds": round(fill_s, 1), "tx_per_s": round(args.records / fill_s, 1)},
    }
    results |= measure_index(chain, db_path, args.sync_samples)
    if args.index_only:
        return results

    port = free_port()
    log_file = work / "explorer.log"
    proc = start_explorer(chain, db_path, port, args.poll, log_file)
    try:
        client = Client(port)
        wait_until_serving(client, proc, log_file)
        console.print("measuring pages over HTTP ...")
        http_ms = measure_http(chain, client, subjects, args.samples)
        live = measure_live(chain, client, args.live_samples, args.poll)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    worst = max(http_ms, key=lambda name: http_ms[name]["p95"])
    results |= {
        "page_p95_ms_max": http_ms[worst]["p95"],
        "page_p95_worst": worst,
        "http_ms": http_ms,
        "new_block": {
            "to_api_since_ms": summary(live),
            "explorer_poll_s": args.poll,
            "page_poll_s": PAGE_POLL_S,
            "on_page_typical_ms": round(statistics.median(live) + PAGE_POLL_S * 500, 1),
            "on_page_worst_ms": round(max(live) + PAGE_POLL_S * 1000, 1),
        },
    }
    results["goals"] = {
        "page_p95_ms_under_150": results["page_p95_ms_max"] < GOALS["page_p95_ms"],
        "index_10k_under_30_s": results["index_seconds_10k"] < GOALS["index_seconds_10k"],
        "new_block_on_page_under_2_s": results["new_block"]["on_page_worst_ms"] < GOALS["new_block_on_page_ms"],
    }
    return results


def print_results(results: dict[str, Any], console: Console) -> None:
    table = Table(title=f"audit explorer, {results['records']:,} contributions from {results['nodes']} nodes (anvil)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    index = results["index"]
    table.add_row("chain filled", f"{results['fill']['seconds']:.0f} s ({results['fill']['tx_per_s']:.0f} tx/s)")
    table.add_row("index from block 0", f"{results['index_seconds_10k']:.2f} s ({index['events']:,} events, "
                  f"{index['blocks']:,} blocks)")
    table.add_row("  log read + decode alone (measured apart)", f"{index['log_read_seconds']:.2f} s")
    for key in ("incremental_sync_ms", "idle_sync_ms"):
        table.add_row(f"{key.replace('_', ' ')} p50 / p95", f"{results[key]['p50']:.1f} / {results[key]['p95']:.1f}")
    for name, figures in results.get("http_ms", {}).items():
        table.add_row(f"GET {name} p50 / p95 ms", f"{figures['p50']:.1f} / {figures['p95']:.1f}")
    if "page_p95_ms_max" in results:
        table.add_row("worst page p95", f"{results['page_p95_ms_max']:.1f} ms ({results['page_p95_worst']})")
        live = results["new_block"]
        table.add_row("record mined -> /api/since p50 / max",
                      f"{live['to_api_since_ms']['p50']:.0f} / {live['to_api_since_ms']['max']:.0f} ms")
        table.add_row("  + the page's own poll: typical / worst",
                      f"{live['on_page_typical_ms']:.0f} / {live['on_page_worst_ms']:.0f} ms")
    console.print(table)


if __name__ == "__main__":
    main()
