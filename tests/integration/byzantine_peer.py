"""A registered but Byzantine hospital, run as its own OS process by test_byzantine.py.

    python -m tests.integration.byzantine_peer SPEC.json

It uses only what any hospital has: its own key and data, the project's public APIs
(`contracts.ledger.AuditLedger` to record, `gossip.GossipNetwork` to announce and serve,
`node.codec` to encode, `node.learner.Learner` to train). It trains honestly on its own
data every round, so its updates have the right names, shapes and a realistic norm,
then records (within what the contract allows) and announces a crafted delta instead.
Product code carries no attack code: everything hostile is here.

SPEC (JSON): attack, key (0x hex), rpc_url, contract, network_id, listen, bootstrap,
data_dir, settings (LearnerSettings fields), rounds, status_file, and optionally
scale (DEFAULT_SCALE), copies, seed. Attacks:

  honest     its honest update, its honest count (a control, not an attack);
  max-count  the full cap as count every round, its update scaled up to `scale` (5) x
             an honest update's norm;
  sign-flip  -10 x its honest update (its direction, 10 x an honest update's norm);
  noise      Gaussian noise of L2 norm 300 x an honest update's, fresh every round;
  replay     `copies` (4) slightly perturbed copies of one noise delta per round, each
             with a random base hash: the first recorded (one per round is what the
             contract allows), the others tried at the same round, plus one at a stale
             round; every copy announced, recorded or not;
  front-run  records every hash an honest peer announces, under its own address and
             its next round, then fetches the payload and serves it; its own rounds
             are its honest updates. Peers announce only what they have recorded, so
             this always comes too late (DuplicateContribution); seeing hashes in the
             mempool first is not modelled (anvil mines each transaction at once);
  revoked    the max-count behaviour; the test's admin revokes it mid-run, and it keeps
             trying to record and announce afterwards.

Like an honest peer, it fetches what the honest peers announce and merges it (mean)
before it trains, so its model follows the network's and its honest update is as large
as theirs: the attacks above are scaled to a realistic update, not to that of a model
that trained alone on one hospital (whose updates soon shrink to nothing).

One round per round an honest peer announces (paced by what it hears), `rounds` in all,
then it keeps serving until SIGTERM. The status file (rewritten after every change)
counts what the chain and the network answered: recorded, refused (per error class),
announced, front-run attempts, payloads served.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

ATTACKS = ("honest", "max-count", "sign-flip", "noise", "replay", "front-run", "revoked")
DEFAULT_SCALE = {"max-count": 5.0, "revoked": 5.0, "sign-flip": 10.0, "noise": 300.0, "replay": 300.0}
"""the crafted update's norm, in honest updates (spec "scale" overrides it). Noise is 300x:
at 100x, random directions cost an undefended network only ~7 accuracy points (measured,
test_byzantine.py), at 300x it destroys it (0.07): "large" noise."""
PACE_TIMEOUT = 20.0
"""longest it waits for an honest peer's next round before it records its own anyway."""


class Byzantine:
    """The adversary's state: its learner, ledger, gossip network and counters."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        import torch

        from contracts.ledger import AuditLedger
        from gossip.identity import eth_address_from_peer_id, peer_id_from_secret
        from node.data import load_image_set
        from node.learner import Learner, LearnerSettings

        torch.set_num_threads(1)
        if spec["attack"] not in ATTACKS:
            raise SystemExit(f"unknown attack {spec['attack']!r}; one of {ATTACKS}")
        self.spec = spec
        self.attack: str = spec["attack"]
        self.secret = bytes.fromhex(spec["key"].removeprefix("0x"))
        self.peer_id = peer_id_from_secret(self.secret)
        self.address = eth_address_from_peer_id(self.peer_id)
        self.ledger = AuditLedger(spec["rpc_url"], spec["contract"], private_key=spec["key"])
        settings = LearnerSettings(**spec["settings"])
        self.learner = Learner(settings, load_image_set(spec["data_dir"], size=settings.image_size))
        self.learner.author = self.address
        self.cap = self.ledger.node_info(self.address).sample_cap  # type: ignore[union-attr]
        self.rng = torch.Generator().manual_seed(int(spec.get("seed", 7)))
        self.round = 0
        """our last round on chain (one contribution per round, strictly increasing)."""
        self.noise: dict[str, Any] | None = None
        self.payloads: dict[bytes, bytes] = {}
        self.counts: Counter[str] = Counter()
        self.recorded: list[str] = []
        self.stolen: list[str] = []
        """honest peers' hashes we recorded as ours (front-run won)."""
        self.honest_round = 0
        """the highest round an honest peer announced."""
        self.heard = trio.Event()
        self.inbound: list[Any] = []
        self.norms: list[tuple[float, float]] = []
        """per round: L2 norm of our honest update, median norm of the honest ones merged."""
        """honest peers' payloads fetched since our last round (PeerPayload)."""
        self.nodes = len(self.ledger.registered_nodes())
        self.reference = 0.0
        """the norm of "an honest update" this round: the median of the honest peers'
        we merged (ours once our model has learnt our data is far smaller), else ours."""

    # --- crafting ----------------------------------------------------------------------

    def train(self, inbound: list[Any]) -> tuple[dict[str, Any], dict[str, Any], int, bytes]:
        """Merge what the honest peers sent, then one honest round on our data:
        (base state, honest delta, count, data root)."""
        from node.aggregate import is_finite, l2_norm
        from node.learner import Network
        from node.merkle import data_root

        honest_norm = 0.0
        if inbound:
            from node.codec import decode_delta

            before = self.learner.base_state = self.learner.state()
            self.learner.merge(0, inbound, Network(self.nodes, float(self.cap)))
            if not is_finite(self.learner.state()):  # the network is wrecked (defences off)
                self.learner.load_state(before)
            honest_norm = statistics.median(
                l2_norm(decode_delta(p.payload, before).tensors) for p in inbound
            )
        base = self.learner.state()
        report = self.learner.trainer.train(self.learner.settings.local_steps, ())
        new = self.learner.state()
        if not is_finite(new):  # our training diverged too: start again from the base
            self.learner.load_state(base)
            new = base
        delta = {k: new[k].float() - base[k].float() for k in new if new[k].is_floating_point()}
        self.norms.append((round(l2_norm(delta), 4), round(honest_norm, 4)))
        self.reference = next(
            (n for n in (honest_norm, l2_norm(delta)) if 0 < n < 1e6), 1.0
        )  # once the honest models are wrecked, their norms say nothing
        return base, delta, min(report.sample_count, self.cap), data_root(report.subjects_used)

    def crafted(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        """The delta(s) we send this round instead of the honest one, sized in multiples
        of an honest update's norm (`self.reference`)."""
        import torch

        from node.aggregate import l2_norm

        def sized(tensors: dict[str, Any], norm: float) -> dict[str, Any]:
            factor = norm / max(l2_norm(tensors), 1e-12)
            return {k: factor * v for k, v in tensors.items()}

        scale = float(self.spec.get("scale", DEFAULT_SCALE.get(self.attack, 1.0)))
        if self.attack in ("max-count", "revoked"):
            return [sized(delta, scale * self.reference)]
        if self.attack == "sign-flip":
            return [sized(delta, -scale * self.reference)]
        if self.attack in ("noise", "replay"):
            if self.noise is None or self.attack == "noise":
                raw = {k: torch.randn(v.shape, generator=self.rng) for k, v in delta.items()}
                self.noise = sized(raw, scale * self.reference)
            if self.attack == "noise":
                return [self.noise]
            return [  # replays: the same noise, perturbed by 0.1% per copy
                {k: v * (1.0 + 1e-3 * torch.randn(v.shape, generator=self.rng)) for k, v in self.noise.items()}
                for _ in range(int(self.spec.get("copies", 4)))
            ]
        return [delta]  # honest, front-run

    def encode(self, base: dict[str, Any], delta: dict[str, Any], base_hash: bytes, round_: int) -> tuple[bytes, bytes]:
        """(hash, payload) of `delta` with our author and `round_` in its header."""
        from node.codec import DeltaEncoder

        new = {k: (v.float() + delta[k]) if k in delta else v for k, v in base.items()}
        encoded = DeltaEncoder(self.learner.encoder.spec, model_id=self.learner.settings.model).encode(
            new, base, base_hash, author=self.address, round=round_
        )
        self.payloads[encoded.delta_hash] = encoded.payload
        return encoded.delta_hash, encoded.payload

    # --- chain -------------------------------------------------------------------------

    def record(self, delta_hash: bytes, base_hash: bytes, round_: int, count: int, root: bytes) -> bool:
        """Try to record; count the chain's answer by error class. Blocking."""
        from contracts.errors import LedgerError

        try:
            self.ledger.record_contribution(delta_hash, base_hash, round_, count, root, 0.0)
        except LedgerError as exc:
            self.counts[f"refused:{type(exc).__name__}"] += 1
            return False
        self.counts["recorded"] += 1
        self.recorded.append("0x" + delta_hash.hex())
        self.round = max(self.round, round_)
        return True

    # --- one round ---------------------------------------------------------------------

    async def one_round(self, net: Any) -> None:
        from node.models import state_hash

        inbound, self.inbound = self.inbound, []
        base, delta, count, root = await trio.to_thread.run_sync(self.train, inbound)
        round_ = self.round + 1
        if self.attack == "max-count" or self.attack == "revoked":
            count = self.cap
        base_hash = state_hash(base)
        sends = self.crafted(delta)
        for i, crafted in enumerate(sends):
            header_round = round_
            base_for_record = base_hash
            if self.attack == "replay":
                base_for_record = os.urandom(32)  # a base nobody has
            delta_hash, payload = await trio.to_thread.run_sync(self.encode, base, crafted, base_for_record, header_round)
            await trio.to_thread.run_sync(self.record, delta_hash, base_for_record, header_round, count, root)
            await self.announce(net, delta_hash, payload, header_round, count)
            if self.attack == "replay" and i == 0 and round_ > 1:
                # a stale round: below our last one on chain
                stale_hash, stale = await trio.to_thread.run_sync(self.encode, base, crafted, os.urandom(32), round_ - 1)
                await trio.to_thread.run_sync(self.record, stale_hash, os.urandom(32), round_ - 1, count, root)
                await self.announce(net, stale_hash, stale, round_ - 1, count)
        self.counts["rounds"] += 1

    async def announce(self, net: Any, delta_hash: bytes, payload: bytes, round_: int, count: int) -> None:
        from gossip import Announcement
        from gossip.errors import MedgossipError

        try:
            await net.announce(
                Announcement(self.peer_id, round_, delta_hash, len(payload), self.learner.settings.codec,
                             {"samples": str(count)}),
                payload,
            )
            self.counts["announced"] += 1
        except MedgossipError as exc:
            self.counts[f"announce-failed:{type(exc).__name__}"] += 1

    # --- listening (pacing; front-running) ------------------------------------------------

    async def listen(self, net: Any) -> None:
        async with trio.open_nursery() as nursery:
            async for received in net.announcements():
                ann = received.announcement
                if ann.peer_id == self.peer_id or ann.delta_hash in self.payloads:
                    continue
                if ann.round > self.honest_round:
                    self.heard.set()
                    self.honest_round = ann.round
                nursery.start_soon(self.take, net, ann)

    async def take(self, net: Any, ann: Any) -> None:
        """Fetch an honest peer's payload to merge before our next round; with
        front-run, record its hash as ours first and serve the payload."""
        from gossip.errors import MedgossipError
        from node.learner import PeerPayload

        self.payloads.setdefault(ann.delta_hash, b"")  # seen: once per hash
        stolen = False
        if self.attack == "front-run":
            self.counts["front-run-attempts"] += 1
            stolen = await trio.to_thread.run_sync(
                self.record, ann.delta_hash, os.urandom(32), self.round + 1, self.cap, os.urandom(32)
            )
            if stolen:
                self.counts["front-run-won"] += 1
                self.stolen.append("0x" + ann.delta_hash.hex())
        try:
            payload = await net.fetch(ann.delta_hash, from_peers=[ann.peer_id])
        except MedgossipError as exc:
            self.counts[f"fetch-failed:{type(exc).__name__}"] += 1
            return
        self.payloads[ann.delta_hash] = payload
        samples = ann.metadata.get("samples", "")
        weight = min(int(samples), self.cap) if samples.isdigit() else self.cap
        self.inbound.append(PeerPayload(ann.peer_id, ann.delta_hash, payload, max(weight, 1)))
        if stolen:
            await self.announce(net, ann.delta_hash, payload, self.round, self.cap)

    async def rounds(self, net: Any) -> None:
        for r in range(1, int(self.spec["rounds"]) + 1):
            # pace: our round r once an honest peer announced round r - 1 (or a while passed)
            with trio.move_on_after(PACE_TIMEOUT):
                while self.honest_round < r - 1:
                    self.heard = trio.Event()
                    await self.heard.wait()
            await self.one_round(net)
            self.write_status(net)
        self.counts["finished"] = 1
        self.write_status(net)

    def write_status(self, net: Any) -> None:
        stats = net.stats
        report = {
            "attack": self.attack, "address": self.address, "peer_id": self.peer_id, "round": self.round,
            "counts": dict(self.counts), "recorded": self.recorded, "stolen": self.stolen, "norms": self.norms, "connected": len(net.connected_peers()),
            "payloads_served": stats.payloads_served, "dropped": dict(stats.dropped), "time": time.time(),
        }
        path = Path(self.spec["status_file"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report))
        tmp.replace(path)


async def main(spec_path: str) -> None:
    from gossip import GossipConfig, GossipNetwork

    spec = json.loads(Path(spec_path).read_text())
    adversary = await trio.to_thread.run_sync(Byzantine, spec)
    config = GossipConfig(
        secret=adversary.secret, network_id=spec["network_id"], listen=[spec["listen"]],
        bootstrap=list(spec["bootstrap"]), is_member=None,
        payload_source=lambda delta_hash: adversary.payloads.get(delta_hash) or None,
    )
    async with GossipNetwork(config) as net:
        adversary.write_status(net)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(adversary.listen, net)
            nursery.start_soon(adversary.rounds, net)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break


if __name__ == "__main__":
    from gossip.logs import configure_libp2p_logging

    configure_libp2p_logging()
    trio.run(main, sys.argv[1])
