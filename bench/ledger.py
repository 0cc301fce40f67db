"""Ledger benchmark on a real anvil (state file, dumped on exit unless --state-interval).

Measures gas per AuditLedger operation, confirmation latency and throughput of
contributions, and the latency of the audit query "contributions of one node" among
10,000 recorded. Prints a table and writes bench/results/ledger.json.

    .venv/bin/python bench/ledger.py [--records 10000] [--latency-samples 200]
    .venv/bin/python bench/ledger.py --gas-only     # gas per operation only, a few seconds

Each node records rounds 1, 2, 3... (the contract takes one contribution per round,
rounds strictly increasing per node) with sample counts within its cap and epsilons
within its privacy budget (every record spends some, so the budget check is measured).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eth_utils import keccak  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from contracts.ledger import AuditLedger, account_address, new_private_key, send_ether  # noqa: E402
from devnet.anvil import find_anvil, free_port, start_anvil, stop_anvil  # noqa: E402
from devnet.manage import ANVIL_FUNDER_KEY  # noqa: E402

RESULTS = REPO / "bench" / "results" / "ledger.json"
BASE = keccak(b"bench-base")
ROOT = keccak(b"bench-root")
WINDOW = 200
SAMPLE_CAP = 1_024
EPSILON_BUDGET = 100_000.0
"""Large enough for every record of a full run (10,000 records spend about 45)."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000,
                        help="contributions recorded before the query benchmark")
    parser.add_argument("--nodes", type=int, default=4, help="nodes sharing those records")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--query-repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--state-interval", type=int, default=None,
                        help="anvil --state-interval (default: dump only on exit; the devnet "
                        "uses 1, which slows anvil as the chain grows)")
    parser.add_argument("--gas-only", action="store_true",
                        help="measure and print gas per operation only (writes no JSON)")
    args = parser.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory(prefix="medgossip-bench-") as tmp:
        anvil = start_anvil(free_port(), Path(tmp) / "state.json", Path(tmp) / "anvil.log",
                            state_interval=args.state_interval, die_with_parent=True)
        try:
            if args.gas_only:
                gas, _, _, _ = measure_gas(anvil.rpc_url, args.nodes)
                results = {"gas": gas}
            else:
                results = run(anvil.rpc_url, args, console)
        finally:
            stop_anvil(anvil.pid)

    if args.gas_only:
        table = Table(title="AuditLedger gas per operation (anvil)")
        table.add_column("operation")
        table.add_column("gas", justify="right")
        for name, used in results["gas"].items():
            table.add_row(name, f"{used:,}")
        console.print(table)
        return

    results["environment"] = {
        "anvil": str(find_anvil().relative_to(REPO)) if find_anvil().is_relative_to(REPO) else "anvil",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "state_file": True,
        "state_interval_s": args.state_interval,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    table = Table(title="AuditLedger on anvil")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, gas in results["gas"].items():
        table.add_row(f"gas {name}", f"{gas:,}")
    for key in ("sequential_tx_per_s", "batch_tx_per_s"):
        table.add_row(key.replace("_", " "), f"{results['throughput'][key]:.0f}")
    latency = results["confirmation_latency_ms"]
    for key in ("p50", "p95"):
        table.add_row(f"confirmation latency {key} ({latency['samples']} tx)", f"{latency[key]:.1f} ms")
    for key, value in results["query_latency_ms"].items():
        table.add_row(f"query {key}", f"{value:.1f} ms")
    sizes = results["query_sizes"]
    table.add_row("recorded contributions / one node's", f"{sizes['recorded_total']:,} / {sizes['one_node_results']:,}")
    console.print(table)
    console.print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


def measure_gas(rpc_url: str, node_count: int) -> tuple[dict[str, int], AuditLedger, list[AuditLedger], list[int]]:
    """Deploy, register `node_count` nodes and run each operation once: gas per
    operation, the admin handle, the node handles and each node's next round."""
    admin_key = new_private_key()
    send_ether(rpc_url, ANVIL_FUNDER_KEY, account_address(admin_key), 1_000 * 10**18)
    admin = AuditLedger.deploy(rpc_url, admin_key)
    gas: dict[str, int] = {"deploy": admin.deployment.gas_used if admin.deployment else 0}

    keys = [new_private_key() for _ in range(node_count)]
    nodes: list[AuditLedger] = []
    for index, key in enumerate(keys):
        send_ether(rpc_url, ANVIL_FUNDER_KEY, account_address(key), 100 * 10**18)
        registered = admin.register_node(account_address(key), b"\x00\x25bench-" + bytes([index]), SAMPLE_CAP,
                                         epsilon_budget=EPSILON_BUDGET)
        gas.setdefault("registerNode", registered.gas_used)
        nodes.append(AuditLedger(rpc_url, admin.address, key))
    next_round = [1] * len(nodes)
    gas["setSampleCap"] = admin.set_sample_cap(nodes[0].account or "", 2 * SAMPLE_CAP).gas_used
    gas["setPrivacyBudget"] = admin.set_privacy_budget(nodes[0].account or "", 2 * EPSILON_BUDGET).gas_used
    gas["setGenesisModel"] = admin.set_genesis_model(keccak(b"genesis")).gas_used
    gas["recordContribution"] = nodes[0].record_contribution(
        keccak(b"first"), BASE, 1, 128, ROOT, 0.5).gas_used
    next_round[0] = 2
    gas["withdrawConsent"] = nodes[0].withdraw_consent(keccak(b"subject")).gas_used
    relayer = AuditLedger(rpc_url, admin.address, admin_key)
    gas["withdrawConsentWithToken"] = relayer.withdraw_consent_with_token(keccak(b"token")).gas_used
    spare = new_private_key()
    admin.register_node(account_address(spare), b"\x00\x25spare", SAMPLE_CAP)
    gas["revokeNode"] = admin.revoke_node(account_address(spare)).gas_used
    return gas, admin, nodes, next_round


def run(rpc_url: str, args: argparse.Namespace, console: Console) -> dict[str, object]:
    gas, admin, nodes, next_round = measure_gas(rpc_url, args.nodes)

    # Sequential: send one, wait for its receipt, repeat.
    latencies: list[float] = []
    started = time.perf_counter()
    sequential = 1 % len(nodes)
    for i in range(args.latency_samples):
        t0 = time.perf_counter()
        nodes[sequential].record_contribution(
            keccak(f"seq-{i}".encode()), BASE, next_round[sequential], 64, ROOT, 0.1)
        next_round[sequential] += 1
        latencies.append((time.perf_counter() - t0) * 1000)
    sequential_rate = args.latency_samples / (time.perf_counter() - started)

    # Batch: fill the chain to `records` contributions, sending without waiting.
    already = 1 + args.latency_samples
    todo = max(0, args.records - already)
    console.print(f"recording {todo} more contributions (batch send) ...")
    started = time.perf_counter()
    # Windows of WINDOW transactions, then wait for each sender's last one: sending
    # all 10,000 at once let anvil's pool silently drop a run of nonces (measured).
    last: dict[int, str] = {}
    for i in range(todo):
        who = i % len(nodes)
        last[who] = nodes[who].submit_contribution(
            keccak(f"batch-{i}".encode()), BASE, next_round[who], 32, ROOT, 0.01, gas=80_000)
        next_round[who] += 1  # sent in nonce order, so mined in round order
        if (i + 1) % WINDOW == 0 or i + 1 == todo:
            for sender, tx_hash in last.items():
                nodes[sender].wait_for(tx_hash, timeout=120)
            last.clear()
    batch_rate = todo / (time.perf_counter() - started) if todo else 0.0

    reader = AuditLedger(rpc_url, admin.address)
    total = len(reader.contributions())
    target = nodes[2 % len(nodes)].account or ""
    query_ms: list[float] = []
    for _ in range(args.query_repeats):
        t0 = time.perf_counter()
        mine = reader.contributions(node=target)
        query_ms.append((time.perf_counter() - t0) * 1000)
    one_ms: list[float] = []
    probe = keccak(b"batch-7")
    for _ in range(args.query_repeats):
        t0 = time.perf_counter()
        reader.contribution(probe)
        one_ms.append((time.perf_counter() - t0) * 1000)
    by_hash_ms: list[float] = []
    for _ in range(args.query_repeats):
        t0 = time.perf_counter()
        reader.contributions(delta_hash=probe)
        by_hash_ms.append((time.perf_counter() - t0) * 1000)

    return {
        "gas": gas,
        "throughput": {
            "sequential_tx_per_s": round(sequential_rate, 1),
            "batch_tx_per_s": round(batch_rate, 1),
            "batch_transactions": todo,
            "batch_window": WINDOW,
        },
        "confirmation_latency_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(percentile(latencies, 0.95), 2),
            "samples": len(latencies),
        },
        "query_latency_ms": {
            "one_node_contributions_median": round(statistics.median(query_ms), 1),
            "one_node_contributions_max": round(max(query_ms), 1),
            "contribution_view_call_median": round(statistics.median(one_ms), 2),
            "by_delta_hash_median": round(statistics.median(by_hash_ms), 1),
        },
        "query_sizes": {
            "recorded_total": total,
            "one_node_results": len(mine),
            "blocks": reader.block_number(),
        },
    }


if __name__ == "__main__":
    main()
