"""A consortium with one Byzantine member, with real processes: anvil, AuditLedger, four
honest `medgossip node start` peers and one registered adversary
(tests/integration/byzantine_peer.py, its own OS process, its own key and hospital).

One corpus (5 hospitals, the full digits demo: 359 common test images, so one image is
0.28 accuracy points) and one anvil serve the module; every run gets a fresh AuditLedger
and fresh peer folders (`LocalNet.fresh_run`), the same seeds, the same length. The
attack-free run (module fixture, shared by every attack) is the same network with the
fifth hospital registered but silent. One run per attack: attacks do not share a run,
because each assertion is about one attack (a run with two would not say which one a
failure belongs to, and each adversary is one node of five). Per attack:

  (a) the honest peers' mean final accuracy on the common test set is at most
      ACCURACY_POINTS below the attack-free run's (the issue's "the honest peers end
      within 2 accuracy points of an attack-free run of the same length"); a single peer
      can sit a point or two off its run's mean in attack-free runs too;
  (b) once settled (every contribution on chain merged or refused by every honest
      peer), every delta on chain is decided the same way (merged, or refused for the
      same reason) by every honest peer that did not author it: the adversary's
      recorded deltas (the revoked node's too) merged or refused for their norm alike,
      a stolen (front-run) hash refused by every peer. A delta's author keeps its own
      update whatever the others decide: an honest hospital whose update the others
      all refuse for its norm (an outlier hospital late in training, 1-2 of ~100 per
      run) holds it alone, and that is reported, not hidden;
  (c) no honest peer process exited.

And the test can fail: with the defences off (norm_bound = norm_refuse = 0, merge =
mean), noise moves the honest accuracy down by at least POISON_DROP.

Measured (2 shared cores, ~5 min for the file, ~25 s a run), with the defaults (mean,
norm_bound 1, norm_refuse 5, reference norms from the chain order): attack-free 0.971;
the worst attack, the x10 sign flip (refused by every peer), 0.954; defences off, noise
0.07 on every peer. Earlier attack-free runs spread over 0.91-0.98 across machines and
loads. The honest peers run the node's default merge rule and bounds (not overridden
here): (a) tests them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from devnet import free_port
from gossip.identity import peer_id_from_secret
from node.cli.localnet import LocalNet, PeerHandle, create, tail
from node.config import NodeConfig
from tests.integration.peer_harness import Adversary, logs, start_adversary, state, status, wait_until

pytestmark = pytest.mark.slow

HOSPITALS = 5
"""4 honest peers and the adversary (dev node 4, hospital 4)."""
SEED = 11
ROUNDS = 25
"""Attack-free, accuracy plateaus by ~25 rounds of 10 steps (0.96-0.98 over 5 runs; 10
rounds gave 0.78 and 0.84, not a plateau); a run takes ~25 s."""
TEMPLATE = NodeConfig(
    rounds=ROUNDS,
    local_steps=10,
    fan_out=4,
    pull_wait=1.0,
    chain_poll=0.5,
    eval_every=5,
    linger=-1,  # finished peers keep merging and serving until the run stops them
)
DEFENCES_OFF = replace(TEMPLATE, norm_bound=0.0, norm_refuse=0.0, merge="mean")
ACCURACY_POINTS = 0.02
POISON_DROP = 0.20
SETTLE_TIMEOUT = 120.0
REVOKE_AFTER = 3
"""the admin revokes the `revoked` adversary once it has recorded this many contributions."""


@dataclass(frozen=True)
class Run:
    """What one run left behind, read once it settled."""

    name: str
    accuracy: Mapping[str, float]
    """honest peer -> its final accuracy on the common test set."""
    holds: Mapping[str, frozenset[str]]
    own: Mapping[str, frozenset[str]]
    """honest peer -> its own recorded deltas."""
    """honest peer -> the deltas in its model: merged, plus its own recorded ones."""
    refused: Mapping[str, Mapping[str, str]]
    """honest peer -> on-chain deltas it refused, with the reason."""
    chain: frozenset[str]
    """every delta hash recorded on chain in this run."""
    adversary_recorded: frozenset[str]
    adversary: Mapping[str, Any]
    """the adversary's status file."""
    clipped: Mapping[str, int]
    seconds: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracy.values())


def _key(value: bytes) -> str:
    return "0x" + value.hex()


def _final_accuracy(peer: PeerHandle) -> float:
    evaluated = [h["eval_accuracy"] for h in state(peer).history if h.get("eval_accuracy") is not None]
    assert evaluated, f"{peer.name} never evaluated\n{logs([peer])}"
    return float(evaluated[-1])


def _start_byzantine(
    net: LocalNet, node: int, attack: str, folder: Path, template: NodeConfig, scale: float | None
) -> Adversary:
    info = net.devnet.nodes[node]
    bootstrap = [f"{p.config.listen[0]}/p2p/{peer_id_from_secret(bytes.fromhex(p.config.key_file.read_text().strip()))}"
                 for p in net.peers]
    ledger = net.ledger()
    spec = {
        "attack": attack,
        "key": info.private_key,
        "rpc_url": net.devnet.rpc_url,
        "contract": net.devnet.contract,
        "network_id": f"{ledger.chain_id}-{ledger.address.lower()}",
        "listen": f"/ip4/127.0.0.1/tcp/{free_port()}",
        "bootstrap": bootstrap,
        "data_dir": str(net.workdir / f"peer-{node}" / "data"),
        "settings": {
            "model": template.model, "image_size": template.image_size, "num_classes": template.num_classes,
            "genesis_seed": template.genesis_seed, "seed": SEED * 1000 + node, "local_steps": template.local_steps,
            "batch_size": template.batch_size, "lr": template.lr, "codec": template.codec,
        },
        "rounds": template.rounds,
        **({} if scale is None else {"scale": scale}),
    }
    return start_adversary(folder, spec, module="tests.integration.byzantine_peer")


def run(net: LocalNet, name: str, attack: str | None, template: NodeConfig = TEMPLATE, scale: float | None = None) -> Run:
    """One run: 4 honest peers (+ the adversary running `attack`), until settled."""
    started = time.monotonic()
    net.fresh_run(name, template, peers=HOSPITALS, seed=SEED)
    silent = net.peers.pop()  # dev node 4: the adversary's key and hospital, or nobody
    net.start_all()
    folder = net.workdir / name / "adversary"
    adversary = None if attack is None else _start_byzantine(net, HOSPITALS - 1, attack, folder, template, scale)
    try:
        if attack == "revoked":
            assert adversary is not None
            wait_until(net, lambda: adversary.status().get("counts", {}).get("recorded", 0) >= REVOKE_AFTER, 90,
                       f"the adversary to record {REVOKE_AFTER} contributions")
            net.ledger(net.devnet.admin_key).revoke_node(silent.address)

        def settled() -> bool:
            if adversary is not None and adversary.process.poll() is not None:
                raise AssertionError(f"{name}: the adversary exited\n{tail(adversary.log_path, 30)}")
            done = all(status(p).get("finished") and status(p).get("queued_records", 1) == 0 for p in net.peers)
            return done and not net.unmerged([silent.address]) and (
                adversary is None or bool(adversary.status().get("counts", {}).get("finished"))
            )

        wait_until(net, settled, SETTLE_TIMEOUT, f"{name}: every honest peer to finish and settle")
        assert all(p.alive() for p in net.peers), f"{name}: an honest peer exited\n{logs(net.peers)}"
        chain = frozenset(_key(c.delta_hash) for c in net.ledger().contributions())
        adversary_recorded = frozenset(_key(c.delta_hash) for c in net.ledger().contributions(node=silent.address))
        holds, refused, own = {}, {}, {}
        for peer in net.peers:
            st = state(peer)
            own[peer.name] = frozenset(e.delta_hash for e in st.journal if e.status == "recorded")
            holds[peer.name] = frozenset(set(st.merged) | own[peer.name])
            refused[peer.name] = {h: r for h, r in st.refused.items() if h in chain}
        return Run(
            name=name,
            accuracy={p.name: _final_accuracy(p) for p in net.peers},
            holds=holds,
            own=own,
            refused=refused,
            chain=chain,
            adversary_recorded=adversary_recorded,
            adversary={} if adversary is None else adversary.status(),
            clipped={p.name: status(p).get("clipped_total", 0) for p in net.peers},
            seconds=time.monotonic() - started,
        )
    finally:
        if adversary is not None:
            adversary.stop()
        for peer in net.peers:
            net.stop_peer(peer)


def describe(result: Run) -> str:
    accuracy = " ".join(f"{a:.3f}" for a in result.accuracy.values())
    return (f"{result.name}: mean {result.mean:.3f} [{accuracy}] clipped {dict(result.clipped)} "
            f"chain {len(result.chain)} adversary-recorded {len(result.adversary_recorded)} "
            f"adversary {result.adversary.get('counts', {})} {result.seconds:.0f}s")


# --- the runs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = create(tmp_path_factory.mktemp("byzantine") / "net", HOSPITALS, template=TEMPLATE, alpha=0.5, seed=SEED)
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def attack_free(net: LocalNet) -> Run:
    result = run(net, "attack-free", None)
    print("\n" + describe(result))
    return result


def decision(result: Run, peer: str, delta: str) -> str:
    """What `peer` did with `delta`: merged (or its own), refused and why, or nothing yet."""
    return "merged" if delta in result.holds[peer] else result.refused[peer].get(delta, "undecided")


def assert_agree(result: Run) -> None:
    """(b): every delta on chain decided, and decided alike by every honest peer but its author."""
    for delta in sorted(result.chain):
        decisions = {p: decision(result, p, delta) for p in result.holds if delta not in result.own[p]}
        assert "undecided" not in decisions.values(), f"{result.name}: not settled on {delta}: {decisions}"
        assert len(set(decisions.values())) == 1, f"{result.name}: peers decided {delta} differently: {decisions}"
    outliers = {d: p for p, mine in result.own.items() for d in mine
                if any(decision(result, q, d) != "merged" for q in result.holds if q != p)}
    if outliers:
        print(f"{result.name}: honest deltas refused by every other peer (kept by their author): {outliers}")


ATTACKS = ("max-count", "sign-flip", "noise", "replay", "front-run", "revoked")


@pytest.fixture(scope="module")
def attacked(net: LocalNet) -> Callable[[str], Run]:
    """attack -> its run, made once per module whichever test asks first."""
    runs: dict[str, Run] = {}

    def get(attack: str) -> Run:
        if attack not in runs:
            runs[attack] = run(net, attack, attack)
            print("\n" + describe(runs[attack]))
        return runs[attack]

    return get


@pytest.mark.parametrize("attack", ATTACKS)
def test_honest_peers_agree_and_survive_a_byzantine_member(attacked: Callable[[str], Run], attack: str) -> None:
    result = attacked(attack)
    counts = result.adversary.get("counts", {})
    # the adversary really took part: registered, recorded on chain, announced
    assert counts.get("recorded", 0) >= 1 and counts.get("announced", 0) >= 1, result.adversary
    # (c) is checked by run(): a peer that exits fails the wait at once
    # (b)
    assert_agree(result)
    holds = next(iter(result.holds.values()))
    refused = next(iter(result.refused.values()))
    stolen = frozenset(result.adversary.get("stolen", [])) if attack == "front-run" else frozenset()
    assert not stolen & holds, f"a stolen hash was merged: {sorted(stolen & holds)}"
    # every other recorded delta of the adversary is valid (the revoked node's too: recorded
    # before its revocation), so merged (maybe clipped) or refused for its norm, alike everywhere
    assert result.adversary_recorded - stolen <= holds | refused.keys()
    assert {r for d, r in refused.items() if d not in stolen} <= {"over-norm"}, refused
    if attack == "replay":
        assert counts.get("refused:StaleRound", 0) >= 1, counts  # the contract refused the extra copies
    if attack == "revoked":
        assert counts.get("refused:NodeRevoked", 0) >= 1, counts  # it kept trying after its revocation


@pytest.mark.parametrize("attack", ATTACKS)
def test_honest_accuracy_holds_under_a_byzantine_member(
    attacked: Callable[[str], Run], attack_free: Run, attack: str
) -> None:
    """(a): the honest peers' mean, against the attack-free run's."""
    result = attacked(attack)
    assert result.mean >= attack_free.mean - ACCURACY_POINTS, (
        f"{describe(result)}\nattack-free: {describe(attack_free)}"
    )


@pytest.mark.parametrize("attack", ("noise",))
def test_without_the_defences_poison_destroys_the_model(net: LocalNet, attack_free: Run, attack: str) -> None:
    """The test above can fail: the same attack with norm_bound = 0 and mean.

    Noise (300x an honest norm) took the honest peers to 0.12 in every run. A x10 sign
    flip without the defences cost 28 points once (0.669 against 0.951) and 16 points in
    a clean-clone run (0.757 against 0.913): real, but not reliably over POISON_DROP, so
    it is not asserted here."""
    result = run(net, f"{attack}-defences-off", attack, DEFENCES_OFF)
    print("\n" + describe(result))
    assert result.mean <= attack_free.mean - POISON_DROP, f"{describe(result)}\nattack-free: {describe(attack_free)}"
