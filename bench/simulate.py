"""1,000 simulated peers running the peers' own learning code (issue 15).

A discrete-event simulation in one process (`bench/gossip_sim.py` says what it reuses
and what it cannot): N peers, each a `node.learner.Learner` on a Dirichlet(alpha) non-IID
shard of the sklearn digits with a linear softmax model, train E local steps per round,
record, push their top-k payload to `fan_out` peers chosen by `gossip.sampling.PeerSampler`
(latency per message, 10% churn per round), and merge what arrived through the peer's
`DeltaInbox` and `Learner.merge`. Next to each run: centralised training on the pooled
shards with the same step budget (N x E steps per round).

Two normalisers of the merge's step (`Learner.merge`'s share over `Network`):
- `network`: Network(N registered nodes, chain mean), the peer's rule as it is: every update
  adds n_j / (N * mean) of itself, which is right when every peer merges every delta;
- `neighbourhood`: Network(fan_out + 1, chain mean): the share of the peers a merge hears from.

Reported per N: mean accuracy per round against centralised, rounds to 95% of the final
accuracy (with a fit a + b ln N), payload bytes per peer per round, model disagreement
(mean pairwise L2 over sampled pairs, accuracy p10-p90). Figures, not pass/fail.

    .venv/bin/python bench/simulate.py            # N = 16, 64, 256, 1000 (~15 min on 2 cores)
    .venv/bin/python bench/simulate.py --quick    # N = 16, 64, few rounds (< 1 min), writes nothing
Writes bench/results/simulate.json and bench/results/simulate.png (or into --out).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
TAIL = 3
"""the final accuracy is the mean over the last TAIL evaluated rounds (churn makes one round noisy)."""


def final_accuracy(curve: list[float]) -> float:
    return sum(curve[-TAIL:]) / len(curve[-TAIL:])


def rounds_to(curve: list[float], ticks: list[int], fraction: float = 0.95) -> int | None:
    """The first round whose accuracy reaches `fraction` of the final accuracy."""
    target = fraction * final_accuracy(curve)
    return next((t for t, a in zip(ticks, curve) if a >= target), None)


def log_fit(points: dict[int, float]) -> dict[str, float]:
    """Least squares rounds = a + b ln N, and the exponent of a power law N^p (log-log slope)."""
    import numpy as np

    ns = np.array(sorted(points), dtype=float)
    ys = np.array([points[int(n)] for n in ns], dtype=float)
    if len(ns) < 2:
        return {}
    b, a = np.polyfit(np.log(ns), ys, 1)
    power = float(np.polyfit(np.log(ns), np.log(np.maximum(ys, 1e-9)), 1)[0])
    return {"a": float(a), "b_per_ln_n": float(b), "power_exponent": power}


_CENTRAL: dict[tuple[int, int, int], list[float]] = {}
"""centralised curves by (peers, rounds, seed): the shards depend on nothing else."""


def run_one(config: Any, digits: Any) -> dict[str, Any]:
    from bench.gossip_sim import Simulation, centralised_curve

    started = time.perf_counter()
    sim = Simulation(config, digits)
    built = time.perf_counter() - started
    result = sim.run()
    key = (config.peers, config.rounds, config.seed)
    if key not in _CENTRAL:
        _CENTRAL[key] = centralised_curve(sim.shards, digits.test, config)
    central = _CENTRAL[key]
    ticks, curve = result.ticks, result.accuracy_mean
    central_at = [central[t - 1] for t in ticks]
    record = asdict(result)
    record["config"] = asdict(config)
    record.update(
        centralised_accuracy=central_at,
        final_accuracy=final_accuracy(curve),
        final_centralised=final_accuracy(central_at),
        over_centralised=final_accuracy(curve) / final_accuracy(central_at),
        rounds_to_95=rounds_to(curve, ticks),
        accuracy_spread_p90_p10=result.accuracy_p90[-1] - result.accuracy_p10[-1],
        build_seconds=built,
    )
    return record


def plot(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc_ax, r95_ax, l2_ax) = plt.subplots(1, 3, figsize=(16, 4.8))
    colours = plt.get_cmap("viridis")
    styles = {"network": "-", "neighbourhood": "--", "all-merge": "-."}
    sizes = sorted({r["config"]["peers"] for rs in runs.values() for r in rs})
    for normaliser, rs in runs.items():
        for r in rs:
            n = r["config"]["peers"]
            c = colours(sizes.index(n) / max(1, len(sizes) - 1) * 0.85)
            label = f"N={n} ({normaliser})"
            acc_ax.plot(r["ticks"], r["accuracy_mean"], styles[normaliser], color=c, label=label)
            l2_ax.plot(r["ticks"], r["disagreement_l2"], styles[normaliser], color=c, label=label)
            if normaliser == "network":
                acc_ax.plot(r["ticks"], r["centralised_accuracy"], ":", color=c, linewidth=1)
        points = {r["config"]["peers"]: r["rounds_to_95"] for r in rs if r["rounds_to_95"] is not None}
        if points:
            r95_ax.plot(list(points), list(points.values()), "o" + styles[normaliser], label=normaliser)
    acc_ax.set(xlabel="round", ylabel="mean test accuracy of the peers", title="accuracy (dotted: centralised)")
    acc_ax.legend(fontsize=7)
    r95_ax.set(xscale="log", xlabel="peers N", ylabel="rounds to 95% of final accuracy", title="rounds to 95% vs N")
    r95_ax.legend(fontsize=8)
    l2_ax.set(xlabel="round", ylabel="mean pairwise L2 between models", title="model disagreement")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 16, 64 and few rounds (< 1 minute)")
    parser.add_argument("--peers", type=int, nargs="+", default=[16, 64, 256, 1000])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--fan-out", type=int, default=5)
    parser.add_argument("--churn", type=float, default=0.1)
    parser.add_argument("--normalisers", nargs="+", default=["network", "neighbourhood"])
    parser.add_argument("--fan-out-sweep", type=int, nargs="*", default=[], help="extra fan-outs at the largest N but one")
    parser.add_argument("--all-merge", type=int, nargs="*", default=[16, 64],
                        help="reference runs where every peer merges every delta (fan-out N-1, network share)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=f"folder of the JSON and PNG (default {RESULTS}; --quick writes none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.peers, args.rounds, args.fan_out_sweep, args.all_merge = [16, 64], 12, [], []

    import torch

    from bench.gossip_sim import SimConfig, load_digits_split

    torch.set_num_threads(1)
    started = time.perf_counter()
    digits = load_digits_split(args.seed)
    runs: dict[str, list[dict[str, Any]]] = {}
    for normaliser in args.normalisers:
        for n in args.peers:
            config = SimConfig(peers=n, rounds=args.rounds, fan_out=args.fan_out, churn=args.churn,
                               normaliser=normaliser, seed=args.seed)
            r = run_one(config, digits)
            runs.setdefault(normaliser, []).append(r)
            print(f"  {normaliser:13s} N={n:5d}: final {r['final_accuracy']:.4f} (centralised {r['final_centralised']:.4f}), "
                  f"{r['wall_seconds']:.0f}s", flush=True)
    for n in args.all_merge:
        config = SimConfig(peers=n, rounds=args.rounds, fan_out=n - 1, churn=args.churn, normaliser="network", seed=args.seed)
        r = run_one(config, digits)
        runs.setdefault("all-merge", []).append(r)
        print(f"  all-merge     N={n:5d}: final {r['final_accuracy']:.4f} (centralised {r['final_centralised']:.4f}), "
              f"{r['wall_seconds']:.0f}s", flush=True)
    sweep = []
    if args.fan_out_sweep:
        n = sorted(args.peers)[-2] if len(args.peers) > 1 else args.peers[0]
        for k in args.fan_out_sweep:
            config = SimConfig(peers=n, rounds=args.rounds, fan_out=k, churn=args.churn,
                               normaliser="neighbourhood", seed=args.seed)
            sweep.append(run_one(config, digits))
            print(f"  fan-out {k} at N={n} (neighbourhood): final {sweep[-1]['final_accuracy']:.4f}", flush=True)

    summary: dict[str, Any] = {}
    for normaliser, rs in runs.items():
        by_n = {r["config"]["peers"]: r for r in rs}
        r95 = {n: r["rounds_to_95"] for n, r in by_n.items()}
        summary[normaliser] = {
            "over_centralised_by_n": {n: r["over_centralised"] for n, r in by_n.items()},
            "rounds_to_95_by_n": r95,
            "rounds_to_95_fit": log_fit({n: v for n, v in r95.items() if v is not None}),
            "bytes_per_peer_round_by_n": {n: r["bytes_sent_per_peer_round"] for n, r in by_n.items()},
            "disagreement_l2_final_by_n": {n: r["disagreement_l2"][-1] for n, r in by_n.items()},
            "accuracy_spread_p90_p10_by_n": {n: r["accuracy_spread_p90_p10"] for n, r in by_n.items()},
        }
    default = summary[args.normalisers[0]]
    largest = max(args.peers)
    out: dict[str, Any] = {
        "normaliser_of_top_level": args.normalisers[0],
        "accuracy_ratio_1000": default["over_centralised_by_n"].get(1000),
        "n1000_over_centralised": default["over_centralised_by_n"].get(1000),
        "rounds_to_95_by_n": default["rounds_to_95_by_n"],
        "bytes_per_peer_round_by_n": default["bytes_per_peer_round_by_n"],
        "summary": summary,
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "wall_seconds": time.perf_counter() - started,
        "runs": runs,
        "fan_out_sweep": sweep,
    }
    print(f"\n{'normaliser':13s} {'N':>5s} {'final':>7s} {'central':>7s} {'ratio':>6s} {'r95':>4s} "
          f"{'B/peer/round':>12s} {'L2':>6s} {'p90-p10':>7s} {'share':>6s}")
    for normaliser, rs in runs.items():
        for r in rs:
            print(f"{normaliser:13s} {r['config']['peers']:5d} {r['final_accuracy']:7.4f} {r['final_centralised']:7.4f} "
                  f"{r['over_centralised']:6.3f} {str(r['rounds_to_95']):>4s} {r['bytes_sent_per_peer_round']:12.0f} "
                  f"{r['disagreement_l2'][-1]:6.3f} {r['accuracy_spread_p90_p10']:7.3f} {r['share_mean']:6.3f}")
    for normaliser, s in summary.items():
        print(f"{normaliser}: rounds to 95% fit {s['rounds_to_95_fit']}")
    if largest == 1000:
        print(f"N=1000 over centralised ({args.normalisers[0]}): {out['accuracy_ratio_1000']:.3f}")
    folder = args.out if args.out is not None else (None if args.quick else RESULTS)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "simulate.json").write_text(json.dumps(out, indent=1) + "\n")
        plot(runs, folder / "simulate.png")
        print(f"wrote {folder / 'simulate.json'} and simulate.png")
    print(f"{out['wall_seconds']:.0f}s")
    return out


if __name__ == "__main__":
    main()
