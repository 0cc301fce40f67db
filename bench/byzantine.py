"""Byzantine peers against the merge defences: honest accuracy under attack, per rule.

In-process, like part 1 of bench/learning.py (same corpus, same Learner calls): N peers,
each a `node.learner.Learner` on its own hospital of the demo corpus (non-IID). Every
round each peer trains (`train_round`), then every peer merges the round's deltas of all
the other peers (fan-out = all) with `Learner.merge(own count, payloads, Network)`, the
normaliser computed as the peer does (N active nodes x mean recorded count). The last B
peers are Byzantine: they train honestly on their own data (so their updates look real),
then replace their delta with a crafted one, encoded by their own `DeltaEncoder` with
their own author and round in the header: decodable (right names and shapes, finite
values). They merge only the honest deltas. Attacks, all within what the contract lets
a registered node record (one contribution per round, count <= cap = local_steps x
batch_size):

  max-count    the cap as count, and its honest update scaled up to the default norm
               bound (the largest step that is not clipped: honest-looking, boosted);
  sign-flip    -10 x its honest update, its honest count;
  sign-flip-bound  -(norm bound) x its honest update: the largest sign flip that is
               neither refused nor clipped (an attacker who knows the defences); not in
               the issue's list, so summarised apart (`adaptive_min_ratio_1_of_5`);
  noise        Gaussian noise of norm 100 x its honest update, its honest count;
  replay       its one delta per round is a slightly perturbed copy of the noise delta
               of round 1 (stale base hash, fresh author/round header);
  replay-many  the same, 5 copies per round each recorded as a contribution: what the
               contract now forbids (one per node per round), shown for comparison and
               left out of `default_min_ratio_1_of_5`.
With 2 Byzantine peers, the noise of `noise`/`replay` is shared (they collude).
Front-running (recording another node's delta hash first) is a chain-level attack, not
a model one: it is not in this table (tests/ cover it).

Each attack run is compared with the attack-free run of the same rule, norm bound, peer
count, length and seed (the would-be Byzantine peers then behave), on the same honest
peers: ratio = honest mean final accuracy / attack-free. Rules: every rule of
`node.merge` with its default parameters (`rule:param=value` sets others on the learners'
strategy), all with the node's default norm bound; "defences off" rows (norm_bound = 0)
for the default rule and mean. The default configuration is `NodeConfig()`'s merge rule and norm bound.

    .venv/bin/python bench/byzantine.py            # ~10 CPU-minutes (~20 when the 2 cores are shared)
    .venv/bin/python bench/byzantine.py --quick    # 1-2 minute smoke run, to a temp file
Writes bench/results/byzantine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.learning import hospital_sets  # noqa: E402
from node.aggregate import l2_norm  # noqa: E402
from node.baselines import centralised_curve  # noqa: E402
from node.codec import EncodedDelta  # noqa: E402
from node.config import NodeConfig  # noqa: E402
from node.errors import EncodingError  # noqa: E402
from node.learner import Learner, LearnerSettings, Network, PeerPayload  # noqa: E402
from node.merge import STRATEGIES, strategy_from_name  # noqa: E402
from node.peer.norms import ChainRecord, NormBook  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "byzantine.json"
ATTACKS = ("max-count", "sign-flip", "noise", "replay", "replay-many", "sign-flip-bound")
REPLAYS = frozenset({"replay", "replay-many"})
PRE_CONTRACT = frozenset({"replay-many"})
"""attacks the contract now refuses: shown, but not in default_min_ratio_1_of_5."""
ADAPTIVE = frozenset({"sign-flip-bound"})
"""attacks beyond the issue's list, sized to the defences: shown, and summarised apart."""
FRACTIONS = ((1, 5), (2, 8))
FLIP = -10.0
NOISE_RATIO = 100.0
REPLAY_JITTER = 0.01
"""relative norm of the perturbation that gives each replayed copy a fresh hash."""
MANY_COPIES = 5

StateDict = dict[str, Tensor]


@dataclass(frozen=True)
class Run:
    """One simulated network: who attacks how, with which merge rule and norm bound."""

    peers: int
    byzantine: int
    merge: str
    norm_bound: float
    attack: str | None


class Adversary:
    """The crafted deltas of a run's Byzantine peers (they share their noise: collusion)."""

    def __init__(self, attack: str, cap: int, boost: float, seed: int) -> None:
        self.attack, self.cap, self.boost = attack, cap, boost
        self.generator = torch.Generator().manual_seed(seed)
        self.poison: StateDict | None = None  # round 1's noise: what replays send again
        self.round_noise: StateDict | None = None  # this round's noise, shared

    def begin_round(self) -> None:
        self.round_noise = None

    def craft(self, honest: StateDict, count: int) -> list[tuple[StateDict, int]]:
        """(delta, recorded count) of each contribution one Byzantine peer makes this round."""
        if self.attack == "max-count":
            return [(_scaled(honest, self.boost), self.cap)]
        if self.attack == "sign-flip":
            return [(_scaled(honest, FLIP), count)]
        if self.attack == "sign-flip-bound":
            return [(_scaled(honest, -self.boost), count)]
        if self.attack == "noise":
            if self.round_noise is None:
                self.round_noise = self._noise(honest, NOISE_RATIO * l2_norm(honest))
            return [(self._jittered(self.round_noise), count)]
        if self.poison is None:
            self.poison = self._noise(honest, NOISE_RATIO * l2_norm(honest))
        copies = MANY_COPIES if self.attack == "replay-many" else 1
        return [(self._jittered(self.poison), count) for _ in range(copies)]

    def _noise(self, like: Mapping[str, Tensor], norm: float) -> StateDict:
        raw = {k: torch.randn(v.shape, generator=self.generator) for k, v in like.items()}
        return _scaled(raw, norm / l2_norm(raw))

    def _jittered(self, delta: StateDict) -> StateDict:
        """A copy with a small perturbation: a new payload, so a new hash to record."""
        jitter = self._noise(delta, REPLAY_JITTER * l2_norm(delta))
        return {k: v + jitter[k] for k, v in delta.items()}


def _scaled(delta: Mapping[str, Tensor], factor: float) -> StateDict:
    return {k: v * factor for k, v in delta.items()}


def _own_delta(learner: Learner) -> StateDict:
    """The update the learner's last train_round made (floating tensors only)."""
    state = learner.state()
    return {k: state[k].float() - learner.base_state[k].float() for k in state if state[k].is_floating_point()}


def _encode(learner: Learner, delta: StateDict, round_: int, base_hash: bytes) -> EncodedDelta:
    """The crafted delta as its author's payload: the same encoder, header and codec."""
    base = learner.base_state
    new_state = {k: (base[k].float() + delta[k]).to(base[k].dtype) if k in delta else base[k] for k in base}
    return learner.encoder.encode(new_state, base, base_hash, author=learner.author, round=round_)


def parse_rule(spec: str) -> tuple[str, dict[str, float]]:
    """`krum:f=2,m=8` -> ("krum", {"f": 2, "m": 8}): a merge rule with its parameters."""
    rule, _, rest = spec.partition(":")
    params: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        params[key] = float(value) if "." in value else int(value)
    return rule, params


def _address(peer: int) -> str:
    """A stand-in Ethereum address for peer `peer` (the header binds its author)."""
    return "0x" + f"{peer + 1:040x}"


def _payload(peer: int, round_: int, delta_hash: bytes, payload: bytes, count: int) -> PeerPayload:
    """What a receiver has once the chain record is checked: the author, round and count."""
    return PeerPayload(f"peer-{peer}", delta_hash, payload, count, author=_address(peer), round=round_)


def simulate(run: Run, settings: LearnerSettings, sets: Sequence[Any], test: Any, rounds: int,
             seed: int, boost: float) -> dict[str, Any]:
    """Run `rounds` rounds of one network; the honest peers' final accuracy and counters.

    `boost`: the factor max-count scales its honest update by (the default norm bound).
    """
    rule, params = parse_rule(run.merge)
    refuse = settings.norm_refuse if run.norm_bound else 0.0  # "defences off": no refusal either
    settings = replace(settings, merge=rule, norm_bound=run.norm_bound, norm_refuse=refuse)
    learners = [Learner(replace(settings, seed=i), images, test) for i, images in enumerate(sets)]
    if params:  # parameters LearnerSettings does not carry (yet): set the strategy itself
        for learner in learners:
            learner.strategy = strategy_from_name(rule, **params)
    n = len(learners)
    for i, learner in enumerate(learners):
        learner.author = _address(i)
    byzantine = set(range(n - run.byzantine, n)) if run.attack else set()
    cap = settings.local_steps * settings.batch_size
    adversary = Adversary(run.attack or "", cap, boost, seed)
    recorded: list[int] = []
    book = NormBook({})  # the chain's order and the payloads' norms: one reference for every peer
    stale_base: bytes | None = None
    clipped = merged = refused = 0
    diverged: int | None = None
    for round_ in range(1, rounds + 1):
        try:
            contributions = [learner.train_round(round_, frozenset()) for learner in learners]
        except EncodingError:  # a model went non-finite: the attack destroyed it, stop here
            diverged = round_
            break
        adversary.begin_round()
        offered: list[tuple[int, PeerPayload]] = []
        for i, c in enumerate(contributions):
            if i not in byzantine:
                offered.append((i, _payload(i, round_, c.delta_hash, c.payload, c.sample_count)))
                continue
            stale_base = stale_base or c.base_hash  # replays keep claiming their first base
            base_hash = stale_base if run.attack in REPLAYS else c.base_hash
            for delta, count in adversary.craft(_own_delta(learners[i]), c.sample_count):
                encoded = _encode(learners[i], delta, round_, base_hash)
                offered.append((i, _payload(i, round_, encoded.delta_hash, encoded.payload, count)))
        recorded += [min(p.sample_count, cap) for _, p in offered]  # the contract caps counts
        book.extend(ChainRecord(p.delta_hash.hex(), p.author) for _, p in offered)
        for _, p in offered:
            book.learn(p.delta_hash.hex(), learners[0].payload_norm(p.payload))
        offered = [(j, replace(p, reference_norm=book.reference(p.delta_hash.hex()) or 0.0)) for j, p in offered]
        network = Network(n, sum(recorded) / len(recorded))
        for i, learner in enumerate(learners):
            payloads = [p for j, p in offered if j != i and (i not in byzantine or j not in byzantine)]
            outcome = learner.merge(contributions[i].sample_count, payloads, network)
            if i not in byzantine:
                clipped += len(outcome.clipped)
                merged += len(outcome.merged)
                refused += len(outcome.over_norm)
    honest = learners[: n - run.byzantine]  # the same peers with and without the attack
    accuracy = statistics.fmean(learner.trainer.evaluate(test) for learner in honest)
    return {"honest_accuracy": accuracy, "clipped_fraction": clipped / merged if merged else 0.0,
            "refused_fraction": refused / (merged + refused) if merged + refused else 0.0,
            "diverged_in_round": diverged}


def _row(run: Run, result: Mapping[str, Any], free: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "attack": run.attack,
        "byzantine": f"{run.byzantine} of {run.peers}",
        "merge": run.merge,
        "norm_bound": run.norm_bound,
        "honest_accuracy": round(result["honest_accuracy"], 4),
        "attack_free_accuracy": round(free["honest_accuracy"], 4),
        "ratio": round(result["honest_accuracy"] / free["honest_accuracy"], 4),
        "clipped_fraction": round(result["clipped_fraction"], 3),
        "refused_fraction": round(result["refused_fraction"], 3),
        "diverged_in_round": result["diverged_in_round"],
    }


def measure(args: argparse.Namespace, configs: Sequence[tuple[str, float]], boost: float) -> dict[str, Any]:
    """Every (fraction, rule, bound) attack-free, then under every attack; and the centralised run."""
    settings = LearnerSettings(local_steps=args.local_steps, lr=args.lr, batch_size=args.batch_size)
    rows: list[dict[str, Any]] = []
    free_rows: list[dict[str, Any]] = []
    central: dict[str, float] = {}
    for byzantine, peers in args.fractions:
        fraction = f"{byzantine} of {peers}"
        with tempfile.TemporaryDirectory(prefix="medgossip-byzantine-") as tmp:
            sets, test = hospital_sets(Path(tmp), peers, args.alpha, args.seed)
        print(f"{fraction} Byzantine: {[len(s) for s in sets]} images per peer", flush=True)
        central[fraction] = centralised_curve(settings, sets, test, args.rounds)[-1]
        for merge, norm_bound in configs:
            t0 = time.time()
            free = simulate(Run(peers, byzantine, merge, norm_bound, None), settings, sets, test,
                            args.rounds, args.seed, boost)
            free_rows.append({"byzantine": fraction, "merge": merge, "norm_bound": norm_bound,
                              "honest_accuracy": round(free["honest_accuracy"], 4)})
            for attack in ATTACKS:
                run = Run(peers, byzantine, merge, norm_bound, attack)
                rows.append(_row(run, simulate(run, settings, sets, test, args.rounds, args.seed, boost), free))
            line = " ".join(f"{r['attack']}={r['ratio']:.3f}" for r in rows[-len(ATTACKS):])
            print(f"  {merge:>14} bound {norm_bound:g}: attack-free {free['honest_accuracy']:.4f}; {line}"
                  f" ({time.time() - t0:.0f} s)", flush=True)
    return {"rows": rows, "attack_free": free_rows, "centralised": central}


def summarise(measured: Mapping[str, Any], rule: str, bound: float) -> dict[str, Any]:
    """Per configuration and fraction, the smallest ratio over the attacks the contract allows."""
    worst: dict[tuple[str, float, str], float] = {}
    adaptive: dict[tuple[str, float, str], float] = {}
    for r in measured["rows"]:
        key = (r["merge"], r["norm_bound"], r["byzantine"])
        if r["attack"] in ADAPTIVE:
            adaptive[key] = min(adaptive.get(key, 1e9), r["ratio"])
        elif r["attack"] not in PRE_CONTRACT:
            worst[key] = min(worst.get(key, 1e9), r["ratio"])
    central = measured["centralised"]
    over_central = {
        (r["merge"], r["norm_bound"], r["byzantine"]): r["honest_accuracy"] / central[r["byzantine"]]
        for r in measured["attack_free"]
    }
    return {
        "default_min_ratio_1_of_5": worst[(rule, bound, "1 of 5")],
        "adaptive_min_ratio_1_of_5": adaptive[(rule, bound, "1 of 5")],
        "default": {"merge": rule, "norm_bound": bound},
        "default_rows": [r for r in measured["rows"] if r["merge"] == rule and r["norm_bound"] == bound],
        "default_attack_free_over_centralised_1_of_5": round(over_central[(rule, bound, "1 of 5")], 4),
        "min_ratio_by_config": [
            {"merge": m, "norm_bound": b, "byzantine": f, "min_ratio": v,
             "attack_free_over_centralised": round(over_central[(m, b, f)], 4)}
            for (m, b, f), v in worst.items()
        ],
        "centralised_accuracy": {k: round(v, 4) for k, v in central.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rules", nargs="+", default=list(STRATEGIES),
                        help="merge rules, each optionally with parameters: trimmed-mean:beta=0.25, krum:f=2,m=8")
    parser.add_argument("--bound", type=float, default=None,
                        help="norm bound of the defended rows (default: the node's)")
    parser.add_argument("--off-rules", nargs="*", default=None,
                        help="rules also run with the defences off (norm_bound=0); default: the default rule and mean")
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fractions", nargs="+", default=[f"{b}/{n}" for b, n in FRACTIONS],
                        choices=[f"{b}/{n}" for b, n in FRACTIONS], help="Byzantine peers / peers")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 rounds; the default rule, mean and multi-krum; results to a temp file")
    args = parser.parse_args()
    defaults = NodeConfig()
    rule, bound = defaults.merge, defaults.norm_bound if args.bound is None else args.bound
    if args.quick:
        args.rounds, args.rules, args.off_rules = 4, ["mean", "multi-krum"], [rule]
    args.fractions = [f for f in FRACTIONS if f"{f[0]}/{f[1]}" in args.fractions]
    if FRACTIONS[0] not in args.fractions:
        parser.error("1/5 is needed: default_min_ratio_1_of_5 is measured on it")
    rules = list(dict.fromkeys([rule, *args.rules]))  # the default configuration is always measured
    off_rules = list(dict.fromkeys([rule, "mean"])) if args.off_rules is None else args.off_rules
    configs = [(r, bound) for r in rules] + [(r, 0.0) for r in off_rules]

    torch.set_num_threads(1)
    started = time.time()
    measured = measure(args, configs, boost=bound)
    result = {
        **summarise(measured, rule, bound),
        "rows": measured["rows"],
        "attack_free": measured["attack_free"],
        "settings": {
            "rounds": args.rounds, "local_steps": args.local_steps, "batch_size": args.batch_size,
            "lr": args.lr, "alpha": args.alpha, "seed": args.seed, "codec": LearnerSettings().codec,
            "cap": args.local_steps * args.batch_size, "fan_out": "all", "sign_flip": FLIP,
            "noise_norm_ratio": NOISE_RATIO, "replay_jitter": REPLAY_JITTER, "replay_many_copies": MANY_COPIES,
            "max_count_boost": bound, "byzantine_peers": "the last ones (highest index)",
        },
        "pre_contract_attacks": sorted(PRE_CONTRACT),
        "adaptive_attacks": sorted(ADAPTIVE),
        "not_measured": {"front-running": "a chain-level attack (recording another node's delta hash first), "
                                          "not a model one: covered by tests, not by this table"},
        "goals": {"default_min_ratio_1_of_5": ">= 0.97",
                  "default_attack_free_over_centralised": ">= 0.98 (bench/learning.py's goal)"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(time.time() - started, 1),
    }
    _print(result)
    out = Path(tempfile.mkdtemp(prefix="medgossip-byzantine-")) / "byzantine.json" if args.quick else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


def _print(result: Mapping[str, Any]) -> None:
    print("\n=== honest final accuracy (ratio to attack-free), by attack x rule x Byzantine fraction ===")
    configs = list(dict.fromkeys((r["merge"], r["norm_bound"]) for r in result["rows"]))
    fractions = list(dict.fromkeys(r["byzantine"] for r in result["rows"]))
    header = f"{'attack':<16} {'fraction':<8} " + " ".join(
        f"{m + (' b=' + format(b, 'g') if b else ' off'):>22}" for m, b in configs)
    print(header)
    cell = {(r["attack"], r["byzantine"], r["merge"], r["norm_bound"]): r for r in result["rows"]}
    free = {(r["byzantine"], r["merge"], r["norm_bound"]): r for r in result["attack_free"]}
    for fraction in fractions:
        print(f"{'(none)':<16} {fraction:<8} " + " ".join(
            f"{free[(fraction, m, b)]['honest_accuracy']:>13.4f}         " for m, b in configs))
        for attack in ATTACKS:
            marks = " *" if attack in PRE_CONTRACT else ""
            print(f"{attack + marks:<16} {fraction:<8} " + " ".join(
                _cell(cell[(attack, fraction, m, b)]) for m, b in configs))
    print("* pre-contract: the contract now records one contribution per node per round;"
          " ! the honest models diverged (NaN) and the run stopped")
    print("front-running is a chain-level attack, not a model one: not in this table")
    d = result["default"]
    print(f"\n=== default configuration: merge={d['merge']}, norm_bound={d['norm_bound']:g} ===")
    for r in result["default_rows"]:
        print(f"  {r['attack']:<15} {r['byzantine']}: {r['honest_accuracy']:.4f} (ratio {r['ratio']:.3f}, "
              f"clipped {r['clipped_fraction']:.0%} of merged, refused {r['refused_fraction']:.0%})")
    print("\n=== smallest ratio over the attacks the contract allows; attack-free / centralised ===")
    for c in result["min_ratio_by_config"]:
        label = c["merge"] + (f" b={c['norm_bound']:g}" if c["norm_bound"] else " off")
        print(f"  {label:<22} {c['byzantine']}: {c['min_ratio']:.3f}; {c['attack_free_over_centralised']:.3f}")
    print(f"default_min_ratio_1_of_5: {result['default_min_ratio_1_of_5']:.4f} (goal >= 0.97)")
    print(f"adaptive_min_ratio_1_of_5 (sign flip sized to the bound, not in the goal):"
          f" {result['adaptive_min_ratio_1_of_5']:.4f}")
    print(f"default attack-free / centralised, 1 of 5: {result['default_attack_free_over_centralised_1_of_5']:.4f}"
          f" (goal >= 0.98)")


def _cell(row: Mapping[str, Any]) -> str:
    mark = "!" if row["diverged_in_round"] else " "
    return f"{row['honest_accuracy']:>13.4f} ({row['ratio']:.3f}){mark}"


if __name__ == "__main__":
    main()
