"""Learning quality and overhead of gossip learning, side by side in one run.

Part 1 (in-process, the node's own code path): N peers, each a `node.learner.Learner`
on its own hospital's ingested DICOM (the demo corpus, non-IID). Every round each peer
trains E local steps and encodes its delta (`train_round`), then pulls the deltas of
`fan_out` random other peers, decodes and merges them (`merge`) — exactly the calls the
peer process makes, minus the network and the chain. Next to it, on the same data and
the same total number of local steps: centralised training on the pooled data
(N*E steps per round) and isolated peers (E steps per round, no merging).
Reported per round: mean test accuracy of each, the gossip/centralised ratio, and the
bytes each peer sent.

Part 2 (real processes): a localnet (anvil + AuditLedger + P peer processes on
127.0.0.1, `medgossip node start`) runs R rounds; from each peer's journal, the fraction
of its wall time (first to last round) spent outside local training.

    .venv/bin/python bench/learning.py [--peers 8] [--rounds 60] [--local-steps 10]
Writes bench/results/learning.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "learning.json"


def hospital_sets(workdir: Path, peers: int, alpha: float, seed: int) -> tuple[list[Any], Any]:
    """The demo corpus split over `peers` hospitals and ingested: (their ImageSets, test set).

    Shared with bench/byzantine.py, so that both benchmarks learn on the same data.
    """
    from node.data import load_image_set
    from node.data.demo_corpus import make_demo
    from node.data.ingest import ingest

    corpus = make_demo(workdir / "corpus", hospitals=peers, alpha=alpha, seed=seed)
    sets = []
    for i, folder in enumerate(corpus.hospitals):
        ingest(folder, corpus.labels_csv, workdir / f"data-{i}")
        sets.append(load_image_set(workdir / f"data-{i}"))
    ingest(corpus.test_dir, corpus.labels_csv, workdir / "test")
    return sets, load_image_set(workdir / "test")


def simulate(args: argparse.Namespace, workdir: Path) -> dict:
    import torch

    from node.baselines import centralised_curve, isolated_curves
    from node.learner import Learner, LearnerSettings, Network, PeerPayload
    from node.peer.norms import ChainRecord, NormBook

    torch.set_num_threads(1)
    sets, test = hospital_sets(workdir, args.peers, args.alpha, args.seed)
    settings = LearnerSettings(
        local_steps=args.local_steps, lr=args.lr, batch_size=args.batch_size,
        codec=args.codec, merge=args.merge,
    )
    print(f"corpus: {[len(s) for s in sets]} images per peer, {len(test)} test images", flush=True)

    rng = random.Random(args.seed)
    learners = [Learner(replace(settings, seed=i), s, test) for i, s in enumerate(sets)]
    for i, learner in enumerate(learners):
        learner.author = f"0x{i + 1:040x}"  # a distinct address per simulated hospital
    n = len(learners)
    history: list[list] = [[] for _ in learners]  # each peer's contributions, oldest first
    merged: list[set[bytes]] = [set() for _ in learners]
    gossip_curve, bytes_per_round, shares = [], [], []
    recorded: list[int] = []
    book = NormBook({})  # the chain order and payload norms: the reference norms, as the peers have them
    train_s = other_s = 0.0
    for round_ in range(1, args.rounds + 1):
        t0 = time.perf_counter()
        contributions = [learner.train_round(round_, frozenset()) for learner in learners]
        for i, c in enumerate(contributions):
            history[i].append(c)  # authors serve every delta they made (keep_payloads=0)
        recorded += [c.sample_count for c in contributions]
        book.extend(ChainRecord(c.delta_hash.hex(), learners[i].author) for i, c in enumerate(contributions))
        for c in contributions:
            book.learn(c.delta_hash.hex(), learners[0].payload_norm(c.payload))
        network = Network(n, sum(recorded) / len(recorded))  # as the peer: N nodes, mean recorded sample count
        sent = [0] * n
        for i, learner in enumerate(learners):
            # As the peer does: pick up to fan_out peers with unmerged deltas, take all of them.
            pending = {j: [c for c in history[j] if c.delta_hash not in merged[i]] for j in range(n) if j != i}
            chosen = rng.sample([j for j, p in pending.items() if p], min(args.fan_out, sum(1 for p in pending.values() if p)))
            payloads = []
            for j in chosen:
                for c in pending[j]:
                    payloads.append(PeerPayload(f"peer-{j}", c.delta_hash, c.payload, c.sample_count,
                                                reference_norm=book.reference(c.delta_hash.hex()) or 0.0))
                    merged[i].add(c.delta_hash)
                    sent[j] += len(c.payload)
            outcome = learner.merge(contributions[i].sample_count, payloads, network)
            shares.append(outcome.share)
        t1 = time.perf_counter()
        train_s += sum(c.train_seconds for c in contributions)
        other_s += (t1 - t0) - sum(c.train_seconds for c in contributions)
        accs = [learner.trainer.evaluate(test) for learner in learners]
        gossip_curve.append(sum(accs) / len(accs))
        bytes_per_round.append(sum(sent) / len(sent))
        if round_ % 10 == 0 or round_ == args.rounds:
            print(f"  gossip round {round_}: mean accuracy {gossip_curve[-1]:.4f}", flush=True)

    print("centralised and isolated baselines ...", flush=True)
    central = centralised_curve(settings, sets, test, args.rounds)
    isolated = isolated_curves(settings, sets, test, args.rounds)
    isolated_mean = [sum(c[r] for c in isolated) / len(isolated) for r in range(args.rounds)]
    ratio = [g / c if c else 0.0 for g, c in zip(gossip_curve, central)]
    tail = max(1, args.rounds // 10)
    return {
        "peers": args.peers,
        "rounds": args.rounds,
        "local_steps": args.local_steps,
        "fan_out": args.fan_out,
        "codec": args.codec,
        "merge": args.merge,
        "alpha": args.alpha,
        "images_per_peer": [len(s) for s in sets],
        "gossip_mean_accuracy": gossip_curve,
        "centralised_accuracy": central,
        "isolated_mean_accuracy": isolated_mean,
        "gossip_over_centralised": ratio,
        "final": {
            "gossip": gossip_curve[-1],
            "centralised": central[-1],
            "isolated": isolated_mean[-1],
            "gossip_over_centralised": ratio[-1],
            f"gossip_over_centralised_mean_last_{tail}_rounds": sum(ratio[-tail:]) / tail,
        },
        "bytes_sent_per_peer_per_round": sum(bytes_per_round) / len(bytes_per_round),
        "in_process_fraction_outside_training": other_s / (train_s + other_s),
        "mean_merge_share": sum(shares) / len(shares),
    }


def real_overhead(args: argparse.Namespace, workdir: Path, local_steps: int) -> dict:
    """Run a real localnet; per peer, wall time between its first and last round vs training."""
    from node.cli.localnet import create
    from node.config import NodeConfig

    template = NodeConfig(
        rounds=args.real_rounds, local_steps=local_steps, fan_out=args.real_peers - 1, eval_every=args.real_eval_every,
        lr=args.lr, batch_size=args.batch_size, codec=args.codec, merge=args.merge, linger=-1,
    )
    net = create(workdir / f"localnet-{local_steps}", args.real_peers, template=template, alpha=args.alpha,
                 seed=args.seed, step=lambda m: print("  " + m, flush=True))
    try:
        net.start_all()
        net.wait(lambda: all((s := p.status()) is not None and s.finished for p in net.peers), timeout=1800)
        per_peer = {}
        for peer in net.peers:
            history = [h for h in peer.store.load_state().history if not h.get("late_merge")]
            first, last = history[0], history[-1]
            wall = last["time"] - first["time"]
            train = last["train_seconds"] - first["train_seconds"]
            per_peer[peer.name] = {
                "rounds": len(history) - 1,
                "wall_seconds": wall,
                "train_seconds": train,
                "fraction_outside_training": 1 - train / wall if wall > 0 else None,
                "seconds_per_round": wall / max(1, len(history) - 1),
            }
    finally:
        net.stop()
    fractions = [p["fraction_outside_training"] for p in per_peer.values() if p["fraction_outside_training"] is not None]
    return {
        "peers": args.real_peers,
        "rounds": args.real_rounds,
        "local_steps": local_steps,
        "eval_every": args.real_eval_every,
        "per_peer": per_peer,
        "mean_fraction_outside_training": sum(fractions) / len(fractions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--fan-out", type=int, default=7)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--codec", default="fp32")
    parser.add_argument("--merge", default=None, help="merge rule (default: the node's, NodeConfig().merge)")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-peers", type=int, default=4)
    parser.add_argument("--real-rounds", type=int, default=20)
    parser.add_argument("--real-eval-every", type=int, default=5, help="peers evaluate every N rounds")
    parser.add_argument("--real-local-steps", type=int, nargs="+", default=[10, 50],
                        help="local steps per round of the real runs (one run each)")
    parser.add_argument("--skip-real", action="store_true", help="only the in-process part")
    args = parser.parse_args()
    if args.merge is None:
        from node.config import NodeConfig

        args.merge = NodeConfig().merge

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="medgossip-bench-") as tmp:
        print(f"part 1: {args.peers} peers in-process, {args.rounds} rounds of {args.local_steps} local steps", flush=True)
        sim = simulate(args, Path(tmp))
        real = []
        if not args.skip_real:
            for steps in args.real_local_steps:
                print(f"part 2: {args.real_peers} real peer processes, {args.real_rounds} rounds of {steps} local steps", flush=True)
                real.append(real_overhead(args, Path(tmp), steps))
    note = {}
    if args.skip_real and RESULTS.exists():  # keep the last real-process figures, and say so
        real = json.loads(RESULTS.read_text()).get("real_processes", [])
        note = {"note": "real_processes are from an earlier full run (this one used --skip-real)"}
    result = {
        "simulation": sim,
        "real_processes": real,
        **note,
        "goals": {"gossip_over_centralised_at_end": ">= 0.98", "fraction_outside_training": "<= 0.10"},
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "seconds": round(time.time() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))

    f = sim["final"]
    print("\n=== gossip learning vs centralised vs isolated (test accuracy) ===")
    print(f"{'round':>6} {'gossip':>8} {'central':>8} {'isolated':>9} {'g/c':>6}")
    step = max(1, args.rounds // 10)
    for r in list(range(step - 1, args.rounds, step)):
        print(f"{r + 1:>6} {sim['gossip_mean_accuracy'][r]:>8.4f} {sim['centralised_accuracy'][r]:>8.4f} "
              f"{sim['isolated_mean_accuracy'][r]:>9.4f} {sim['gossip_over_centralised'][r]:>6.3f}")
    print(f"final gossip/centralised ratio: {f['gossip_over_centralised']:.4f} (goal >= 0.98)")
    print(f"bytes sent per peer per round: {sim['bytes_sent_per_peer_per_round']:,.0f}")
    print(f"in-process fraction of round time outside training: {sim['in_process_fraction_outside_training']:.3f}")
    for run in real:
        print(f"real processes, {run['local_steps']} local steps per round, evaluating every {run['eval_every']}:")
        for name, p in run["per_peer"].items():
            print(f"  {name}: {p['seconds_per_round']:.2f} s/round, outside training {p['fraction_outside_training']:.3f}")
        print(f"  mean fraction outside training {run['mean_fraction_outside_training']:.3f} (goal <= 0.10)")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
