"""Proof benchmark: size and verification time of format-1 proofs, locally and on anvil.

Local part. For 10, 1,000 and 100,000 subjects per contribution it builds the round's
tree once, writes proofs for sampled members (inclusion) and non-members (exclusion)
with ``node.proofs.write_proof``, and measures:

- the size of each proof file as written (bytes on disk, compact JSON);
- local verification time per proof, ``node.proofs.check`` alone and ``load_proof`` +
  ``check`` (median over many runs, ms; no chain involved).

Chain part, on a fresh anvil (started and stopped here, like bench/ledger.py):

- one RPC lookup per proof: a node records one contribution per subject count with the
  tree's data root; each sampled proof is verified by fetching its ``ContributionRecorded``
  event by delta hash (``AuditLedger.contributions(delta_hash=...)``: eth_blockNumber +
  eth_getLogs) and comparing the data root, then ``check`` (median of ``--rpc-repeats``);
- the audit of one node: it records 1,000 contributions of 10-50 subjects each with real
  transactions (sent in windows, receipts read), keeps each round's audit record and
  node.json's journal through ``CheckpointStore`` as the peer does, and the patient
  withdraws by token after round 500 (the subject is in about a fifth of the rounds
  before, in none after). Then ``node.audit.prove_withdrawal`` and ``verify_audit`` are
  timed in-process (median of ``--audit-repeats``), and ``medgossip audit prove`` /
  ``medgossip audit verify`` once each as subprocesses (the user's view: interpreter
  start and imports included).

    .venv/bin/python bench/proofs.py            # ~20 s on 2 idle cores, 40-80 s when shared
    .venv/bin/python bench/proofs.py --quick    # 10-15 s smoke run (100 contributions), to a temp file

Writes bench/results/proofs.json with top-level ``exclusion_proof_bytes_100k`` (the
largest sampled exclusion proof over 100,000 subjects), ``verify_ms_local`` (median
``check`` of those exclusion proofs), ``verify_ms_rpc`` (the same with the event lookup),
``verify_1000_contributions_s`` / ``prove_1000_contributions_s`` (in-process medians) and
``cli_verify_1000_contributions_s`` (the key names carry ``--contributions``). Goals
(issue 11): an exclusion proof for 100,000 subjects under 2.5 KB; local verification
under 1 ms per proof; verifying 1,000 contributions against anvil under 10 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eth_hash.auto import keccak  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from contracts.ledger import AuditLedger, account_address, new_private_key, send_ether  # noqa: E402
from devnet.anvil import free_port, start_anvil, stop_anvil  # noqa: E402
from devnet.manage import ANVIL_FUNDER_KEY  # noqa: E402
from node.audit import prove_withdrawal, verify_audit  # noqa: E402
from node.checkpoint import CheckpointStore, JournalEntry, NodeState  # noqa: E402
from node.data.consent import commitment_of  # noqa: E402
from node.merkle import MerkleTree, data_root, sorted_leaves  # noqa: E402
from node.proofs import EXCLUSION, INCLUSION, PROOF_FORMAT, Proof, check, load_proof, prove_in, write_proof  # noqa: E402

RESULTS = REPO / "bench" / "results" / "proofs.json"
SUBJECT_COUNTS = (10, 1_000, 100_000)
DELTA_HASH = keccak(b"bench-proofs-delta")
GOAL_EXCLUSION_BYTES_100K = 2_500
GOAL_VERIFY_MS = 1.0
GOAL_VERIFY_1000_S = 10.0

TOKEN = keccak(b"bench-proofs-withdrawn-patient")
"""The withdrawn patient's consent token; SUBJECT is its commitment."""
SUBJECT = commitment_of(TOKEN)
BASE = keccak(b"bench-proofs-base")
MIN_SUBJECTS, MAX_SUBJECTS = 10, 50
"""Subjects per contribution of the audited node."""
POOL_SIZE = 2_000
WINDOW = 200
"""Transactions sent before reading their receipts (bench/ledger.py: larger runs let
anvil's pool drop nonces)."""
RECORD_GAS = 150_000
"""Above recordContribution's ~52,000 (bench/results/ledger.json): no estimate per send."""


def commitments(n: int, seed: int) -> list[bytes]:
    """``n`` distinct subject commitments, like keccak256 of random consent tokens."""
    rng = random.Random(seed)
    return sorted_leaves(keccak(rng.randbytes(32)) for _ in range(n))


def sample_subjects(tree: MerkleTree, samples: int, seed: int) -> dict[str, list[bytes]]:
    """Random members, and random non-members (almost all fall between two leaves)."""
    rng = random.Random(seed)
    members = rng.sample(tree.leaves, min(samples, len(tree.leaves)))
    present = set(tree.leaves)
    outsiders: list[bytes] = []
    while len(outsiders) < samples:
        candidate = rng.randbytes(32)
        if candidate not in present:
            outsiders.append(candidate)
    return {INCLUSION: members, EXCLUSION: outsiders}


def proof_file_sizes(proofs: list[Proof], folder: Path) -> list[int]:
    """Bytes on disk of each proof, written as the CLI writes it."""
    sizes = []
    for i, proof in enumerate(proofs):
        path = folder / f"proof-{i}.json"
        write_proof(path, proof)
        sizes.append(path.stat().st_size)
    return sizes


def median_ms(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``action`` over ``repeats`` runs, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        action()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e6


def build_tree(n: int) -> tuple[MerkleTree, float]:
    """The tree of ``n`` random commitments, and the seconds its hashing took."""
    start = time.perf_counter()
    tree = MerkleTree.build(commitments(n, seed=n))
    return tree, time.perf_counter() - start


def measure_local(tree: MerkleTree, build_s: float, samples: int, repeats: int, folder: Path) -> dict[str, Any]:
    """Sizes and local verification times of both kinds of proof over the tree's subjects."""
    n = len(tree.leaves)
    result: dict[str, Any] = {"subjects": n, "tree_build_s": round(build_s, 4)}
    for kind, subjects in sample_subjects(tree, samples, seed=n + 1).items():
        proofs = [prove_in(tree, subject, DELTA_HASH) for subject in subjects]
        if any(proof.kind != kind for proof in proofs):
            raise RuntimeError(f"sampled {kind} subjects gave another kind of proof")
        sizes = proof_file_sizes(proofs, folder / f"{n}-{kind}")
        paths = sorted((folder / f"{n}-{kind}").glob("proof-*.json"))
        cycle = iter(range(10**9))
        check_ms = median_ms(lambda: check(proofs[next(cycle) % len(proofs)]), repeats)
        file_ms = median_ms(lambda: check(load_proof(paths[next(cycle) % len(paths)])), repeats)
        result[kind] = {
            "proofs_sampled": len(proofs),
            "siblings_max": max(sum(len(x.siblings) for x in p.leaves) for p in proofs),
            "bytes_median": statistics.median(sizes),
            "bytes_max": max(sizes),
            "check_ms_median": round(check_ms, 4),
            "load_and_check_ms_median": round(file_ms, 4),
        }
    return result


def run_local(trees: dict[int, tuple[MerkleTree, float]], samples: int, repeats: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="medgossip-bench-proofs-") as tmp:
        return [measure_local(tree, build_s, samples, repeats, Path(tmp)) for tree, build_s in trees.values()]


def print_local(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title=f"{PROOF_FORMAT}: proof file size and local verification")
    for column in ("subjects", "kind", "siblings (max)", "bytes (median)", "bytes (max)",
                   "check ms", "load+check ms"):
        table.add_column(column, justify="right")
    for row in rows:
        for kind in (EXCLUSION, INCLUSION):
            r = row[kind]
            table.add_row(f"{row['subjects']:,}", kind, str(r["siblings_max"]),
                          f"{r['bytes_median']:,.0f}", f"{r['bytes_max']:,}",
                          f"{r['check_ms_median']:.3f}", f"{r['load_and_check_ms_median']:.3f}")
    console.print(table)


# --- chain part: anvil ---------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """A fresh AuditLedger on anvil: the admin's handle and the RPC URL."""

    rpc_url: str
    admin: AuditLedger

    def reader(self) -> AuditLedger:
        """A handle without a key: what a verifier has."""
        return AuditLedger(self.rpc_url, self.admin.address)

    def node(self, name: bytes, sample_cap: int) -> AuditLedger:
        """A funded, registered node's handle."""
        key = new_private_key()
        send_ether(self.rpc_url, ANVIL_FUNDER_KEY, account_address(key), 10 * 10**18)
        self.admin.register_node(account_address(key), b"\x00\x25" + name, sample_cap)
        return AuditLedger(self.rpc_url, self.admin.address, key)


def deploy(rpc_url: str) -> Chain:
    admin_key = new_private_key()
    send_ether(rpc_url, ANVIL_FUNDER_KEY, account_address(admin_key), 100 * 10**18)
    return Chain(rpc_url, AuditLedger.deploy(rpc_url, admin_key))


def verify_with_lookup(ledger: AuditLedger, proof: Proof) -> None:
    """What a verifier does for one proof: its ContributionRecorded event by delta hash
    (eth_blockNumber + one eth_getLogs), the same data root, then the local check."""
    events = ledger.contributions(delta_hash=proof.delta_hash)
    if not events or events[0].data_root != proof.data_root:
        raise RuntimeError(f"no contribution with the proof's data root for 0x{proof.delta_hash.hex()}")
    check(proof)


def measure_rpc(chain: Chain, trees: dict[int, tuple[MerkleTree, float]], samples: int,
                repeats: int) -> list[dict[str, Any]]:
    """Per subject count, one contribution recorded with the tree's data root, then the
    median time of `verify_with_lookup` over `repeats` proofs of each kind."""
    node = chain.node(b"bench-rpc", sample_cap=max(SUBJECT_COUNTS))
    reader = chain.reader()
    rows = []
    for round_, (n, (tree, _)) in enumerate(trees.items(), start=1):
        delta_hash = keccak(b"bench-proofs-rpc-%d" % n)
        node.record_contribution(delta_hash, BASE, round_, n, tree.data_root, 0.0)
        row: dict[str, Any] = {"subjects": n}
        for kind, subjects in sample_subjects(tree, samples, seed=n + 2).items():
            proofs = [prove_in(tree, subject, delta_hash) for subject in subjects]
            cycle = iter(range(10**9))
            verify_with_lookup(reader, proofs[0])  # a warm connection, as every later call has
            ms = median_ms(lambda: verify_with_lookup(reader, proofs[next(cycle) % len(proofs)]), repeats)
            row[kind] = {"verify_ms_median": round(ms, 3), "repeats": repeats}
        rows.append(row)
    return rows


@dataclass(frozen=True)
class History:
    """The custodian's side of the audit scenario, once built on chain."""

    folder: Path
    node: str
    withdrawal_block: int
    rounds: int
    rounds_using_subject_before: int
    rounds_after_withdrawal: int
    send_s: float


def build_history(chain: Chain, folder: Path, rounds: int, seed: int = 0) -> History:
    """A registered node records `rounds` contributions of 10-50 subjects each (format-1
    data roots), keeping each round's audit record and node.json's journal as the peer
    does; the patient withdraws by token after half of them. The subject is in about a
    fifth of the rounds before, in none after. Transactions go out in windows of
    `WINDOW` without waiting, then every receipt is read (a revert would raise)."""
    rng = random.Random(seed)
    pool = [keccak(b"bench-patient-%d" % i) for i in range(POOL_SIZE)]
    node = chain.node(b"bench-custodian", sample_cap=MAX_SUBJECTS)
    store = CheckpointStore(folder)
    journal: list[JournalEntry] = []
    pending: list[tuple[int, str, bytes, bytes, int]] = []
    half = rounds // 2
    used_before = 0
    withdrawal_block = 0
    start = time.perf_counter()

    def flush() -> None:
        for round_, tx_hash, delta_hash, root, count in pending:
            mined = node.wait_for(tx_hash, timeout=120)
            journal.append(JournalEntry(round=round_, delta_hash=_hex(delta_hash), base_hash=_hex(BASE),
                                        sample_count=count, data_root=_hex(root), epsilon=0.0,
                                        status="recorded", tx_hash=mined.tx_hash, block=mined.block_number))
        pending.clear()

    for round_ in range(1, rounds + 1):
        subjects = rng.sample(pool, rng.randint(MIN_SUBJECTS, MAX_SUBJECTS))
        if round_ <= half and rng.random() < 0.2:
            subjects[0] = SUBJECT
            used_before += 1
        root = data_root(subjects)
        delta_hash = keccak(b"bench-proofs-audit-%d" % round_)
        tx_hash = node.submit_contribution(delta_hash, BASE, round_, len(subjects), root, 0.0, gas=RECORD_GAS)
        pending.append((round_, tx_hash, delta_hash, root, len(subjects)))
        store.save_audit(round_, {"delta_hash": _hex(delta_hash), "data_root": _hex(root),
                                  "subjects": [_hex(s) for s in subjects]})
        if len(pending) == WINDOW or round_ == half:
            flush()
        if round_ == half:
            # any sender may withdraw by token: here the admin, as a relayer would
            withdrawal_block = chain.admin.withdraw_consent_with_token(TOKEN).block_number
    flush()
    store.save_state(NodeState(round=rounds, journal=journal))
    return History(folder, node.account or "", withdrawal_block, rounds, used_before, rounds - half,
                   time.perf_counter() - start)


def measure_audit(chain: Chain, history: History, work: Path, repeats: int) -> dict[str, Any]:
    """Median seconds of prove_withdrawal and verify_audit in-process (`repeats` runs
    each, on a warm connection), and of the `medgossip audit prove|verify` commands."""
    reader = chain.reader()
    prove_s, verify_s = [], []
    for i in range(max(1, repeats)):
        out = work / f"proofs-{i}"
        start = time.perf_counter()
        proved = prove_withdrawal(reader, SUBJECT, history.folder, out)
        prove_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        report = verify_audit(reader, [out])
        verify_s.append(time.perf_counter() - start)
        if proved.violations or not report.ok:
            raise RuntimeError(f"the audit scenario does not verify: {report.summary}")
    kinds = [c.kind for c in report.checks]
    expected = (history.rounds_after_withdrawal, history.rounds_using_subject_before)
    if (kinds.count(EXCLUSION), kinds.count(INCLUSION)) != expected:
        raise RuntimeError(f"expected {expected} exclusion/inclusion proofs, verified {len(kinds)}")

    target = ["--rpc", chain.rpc_url, "--contract", chain.admin.address]
    cli_prove_s = run_cli(["audit", "prove", "--subject", _hex(SUBJECT), "--checkpoint-dir",
                           str(history.folder), "--out", str(work / "proofs-cli"), *target])
    cli_verify_s = run_cli(["audit", "verify", str(work / "proofs-cli"), *target])
    return {
        "contributions": history.rounds,
        "subjects_per_contribution": [MIN_SUBJECTS, MAX_SUBJECTS],
        "withdrawal_block": history.withdrawal_block,
        "exclusion_proofs": kinds.count(EXCLUSION),
        "inclusion_proofs": kinds.count(INCLUSION),
        "history_send_s": round(history.send_s, 2),
        "history_tx_per_s": round(history.rounds / history.send_s, 1),
        "prove_s_median": round(statistics.median(prove_s), 3),
        "prove_s_runs": [round(x, 3) for x in prove_s],
        "verify_s_median": round(statistics.median(verify_s), 3),
        "verify_s_runs": [round(x, 3) for x in verify_s],
        "cli_prove_s": round(cli_prove_s, 3),
        "cli_verify_s": round(cli_verify_s, 3),
    }


def run_cli(arguments: list[str]) -> float:
    """Wall seconds of one `medgossip ...` run as a user starts it (interpreter start and
    imports included, output to a pipe); a non-zero exit raises with its stderr."""
    command = [str(Path(sys.executable).parent / "medgossip"), *arguments]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def run_chain(trees: dict[int, tuple[MerkleTree, float]], args: argparse.Namespace,
              console: Console) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Both chain measurements on one fresh anvil (state dumped on exit only)."""
    with tempfile.TemporaryDirectory(prefix="medgossip-bench-proofs-chain-") as tmp:
        work = Path(tmp)
        anvil = start_anvil(free_port(), work / "state.json", work / "anvil.log",
                            state_interval=None, die_with_parent=True)
        try:
            chain = deploy(anvil.rpc_url)
            rpc = measure_rpc(chain, trees, args.samples, args.rpc_repeats)
            console.print(f"recording {args.contributions:,} contributions on anvil ...")
            history = build_history(chain, work / "checkpoint", args.contributions)
            audit = measure_audit(chain, history, work, args.audit_repeats)
        finally:
            stop_anvil(anvil.pid)
    return rpc, audit


def print_chain(rpc: list[dict[str, Any]], audit: dict[str, Any], console: Console) -> None:
    table = Table(title="verification with one RPC lookup (anvil): event by delta hash + check")
    for column in ("subjects", "exclusion ms", "inclusion ms"):
        table.add_column(column, justify="right")
    for row in rpc:
        table.add_row(f"{row['subjects']:,}", f"{row[EXCLUSION]['verify_ms_median']:.2f}",
                      f"{row[INCLUSION]['verify_ms_median']:.2f}")
    console.print(table)
    table = Table(title=f"audit of {audit['contributions']:,} contributions of one node (anvil)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("proofs written (exclusion / inclusion)",
                  f"{audit['exclusion_proofs']:,} / {audit['inclusion_proofs']:,}")
    table.add_row("history recorded (tx/s)", f"{audit['history_tx_per_s']:,.0f}")
    table.add_row("prove_withdrawal (median s)", f"{audit['prove_s_median']:.2f}")
    table.add_row("verify_audit (median s)", f"{audit['verify_s_median']:.2f}")
    table.add_row("medgossip audit prove (s)", f"{audit['cli_prove_s']:.2f}")
    table.add_row("medgossip audit verify (s)", f"{audit['cli_verify_s']:.2f}")
    console.print(table)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _keccak_backend() -> str:
    keccak(b"")  # eth_hash picks its backend on first use
    hasher = getattr(keccak, "hasher", None)
    return type(getattr(hasher, "__self__", hasher)).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200,
                        help="members and non-members sampled per subject count")
    parser.add_argument("--repeats", type=int, default=2_000,
                        help="timed local verifications per subject count and kind")
    parser.add_argument("--rpc-repeats", type=int, default=50,
                        help="timed verifications with an RPC lookup per subject count and kind")
    parser.add_argument("--contributions", type=int, default=1_000,
                        help="contributions of the node whose audit is proved and verified")
    parser.add_argument("--audit-repeats", type=int, default=3,
                        help="in-process prove + verify runs (median reported)")
    parser.add_argument("--out", type=Path, default=None, help=f"default {RESULTS.relative_to(REPO)}")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (fewer samples, 100 contributions), results to a temp file")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.repeats, args.rpc_repeats = 20, 200, 10
        args.contributions, args.audit_repeats = 100, 1
    if args.out is None:
        quick_dir = Path(tempfile.mkdtemp(prefix="medgossip-bench-proofs-")) if args.quick else None
        args.out = quick_dir / "proofs.json" if quick_dir is not None else RESULTS
    console = Console(width=100)  # the tables fit, also when piped
    started = time.perf_counter()
    load_before = os.getloadavg()[0]  # the machine is shared: a loaded run is slower

    trees = {n: build_tree(n) for n in SUBJECT_COUNTS}
    local = run_local(trees, args.samples, args.repeats)
    print_local(local, console)
    rpc, audit = run_chain(trees, args, console)
    print_chain(rpc, audit, console)

    biggest = next(row for row in local if row["subjects"] == 100_000)
    exclusion_bytes = biggest[EXCLUSION]["bytes_max"]
    verify_ms = biggest[EXCLUSION]["check_ms_median"]
    rpc_ms = next(row for row in rpc if row["subjects"] == 100_000)[EXCLUSION]["verify_ms_median"]
    n = args.contributions
    result = {
        "benchmark": "proofs",
        "format": PROOF_FORMAT,
        "goals": {
            "exclusion_proof_bytes_100k": f"< {GOAL_EXCLUSION_BYTES_100K}",
            "verify_ms_local": f"< {GOAL_VERIFY_MS}",
            "verify_1000_contributions_s": f"< {GOAL_VERIFY_1000_S}",
        },
        "exclusion_proof_bytes_100k": exclusion_bytes,
        "verify_ms_local": verify_ms,
        "verify_ms_rpc": rpc_ms,
        f"verify_{n}_contributions_s": audit["verify_s_median"],
        f"prove_{n}_contributions_s": audit["prove_s_median"],
        f"cli_verify_{n}_contributions_s": audit["cli_verify_s"],
        "local": local,
        "rpc": rpc,
        "audit": audit,
        "setup": {"samples": args.samples, "repeats": args.repeats, "rpc_repeats": args.rpc_repeats,
                  "audit_repeats": args.audit_repeats, "quick": args.quick,
                  "size": "bytes on disk of write_proof's compact JSON; _max over the samples",
                  "verify_ms_local": "median node.proofs.check of 100,000-subject exclusion proofs",
                  "verify_ms_rpc": "median ContributionRecorded lookup by delta hash on anvil + check, "
                                   "100,000-subject exclusion proofs (proof already in memory)",
                  "verify_contributions_s": "median node.audit.verify_audit in-process on the folder "
                                            "prove_withdrawal wrote (index.json + one proof per file)",
                  "chain": "anvil, instant mining, on this machine, state dumped on exit only"},
        "machine": {"python": platform.python_version(), "keccak": _keccak_backend(),
                    "cpus": os.cpu_count(), "load_average_1min_before_after":
                    [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "seconds": round(time.perf_counter() - started, 1),
    }
    console.print(
        f"exclusion proof, 100,000 subjects: {exclusion_bytes:,} bytes "
        f"(goal < {GOAL_EXCLUSION_BYTES_100K:,}); local check {verify_ms:.3f} ms "
        f"(goal < {GOAL_VERIFY_MS} ms); with an RPC lookup {rpc_ms:.2f} ms"
    )
    console.print(
        f"{n:,} contributions: verify {audit['verify_s_median']:.2f} s (goal < {GOAL_VERIFY_1000_S} s "
        f"for 1,000), prove {audit['prove_s_median']:.2f} s; CLI verify {audit['cli_verify_s']:.2f} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
