"""A whole medgossip network on this machine: a devnet and N peer processes on loopback.

Used by `medgossip demo`, the integration tests and `bench/learning.py`, so that all
three exercise the real thing: anvil, AuditLedger, DICOM files ingested per hospital,
and one `medgossip node start` OS process per peer talking libp2p on 127.0.0.1.
anvil and the peers die with the process that created the LocalNet, even if it is
killed hard (devnet.processes.spawn); create and start them from the main thread.

    workdir/
      corpus/            make-demo output (DICOM with synthetic PHI, one folder per hospital)
      devnet/            anvil state, devnet.json (keys: mode 0600)
      test-data/         the common held-out test set, ingested
      peer-<i>/          data/ (ingested), node.key, node.toml, checkpoint/, peer.log
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from contracts.ledger import DEFAULT_EPSILON_BUDGET, AuditLedger
from devnet import DevnetInfo, free_port, start_devnet, stop_devnet
from devnet.processes import spawn
from gossip.identity import eth_address_from_peer_id, peer_id_bytes_from_secret, peer_id_from_secret
from node.checkpoint import CheckpointStore, atomic_write
from node.config import NodeConfig, to_toml
from node.errors import PeerError
from node.data import load_image_set
from node.data.demo_corpus import DemoCorpus, make_demo
from node.data.ingest import ingest
from node.models import build_model, state_hash
from node.peer.status import PeerStatus

MARKER = ".medgossip-localnet"
"""a workdir holding this file was made by us and may be wiped by the next run."""


@dataclass
class PeerHandle:
    name: str
    folder: Path
    config: NodeConfig
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.folder / "node.toml"

    @property
    def log_path(self) -> Path:
        return self.folder / "peer.log"

    @property
    def store(self) -> CheckpointStore:
        return CheckpointStore(self.config.checkpoint_dir)

    def status(self) -> PeerStatus | None:
        """The peer's status.json, None before its first write."""
        try:
            return PeerStatus.load(self.config.checkpoint_dir)
        except PeerError:  # unreadable: report "no status yet" rather than stop the caller
            return None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def address(self) -> str:
        """The node's Ethereum address (its key is also its libp2p identity)."""
        secret = bytes.fromhex(self.config.key_file.read_text().strip().removeprefix("0x"))
        return eth_address_from_peer_id(peer_id_from_secret(secret))


@dataclass
class LocalNet:
    workdir: Path
    devnet: DevnetInfo
    corpus: DemoCorpus
    test_data: Path
    peers: list[PeerHandle] = field(default_factory=list)

    @property
    def devnet_file(self) -> Path:
        return self.workdir / "devnet" / "devnet.json"

    def ledger(self, key: str | None = None) -> AuditLedger:
        return AuditLedger(self.devnet.rpc_url, self.devnet.contract, private_key=key)

    # --- peer processes -----------------------------------------------------------

    def start_peer(self, peer: PeerHandle, env: Mapping[str, str] | None = None) -> None:
        with open(peer.log_path, "ab") as log:
            peer.process = spawn(
                [sys.executable, "-m", "node.cli", "node", "start", "--config", str(peer.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )

    def start_all(self) -> None:
        for peer in self.peers:
            self.start_peer(peer)

    def stop_peer(self, peer: PeerHandle, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if peer.process is None:
            return
        if peer.process.poll() is None:
            peer.process.send_signal(sig)
            try:
                peer.process.wait(timeout)
            except subprocess.TimeoutExpired:
                peer.process.kill()
                peer.process.wait()

    def stop(self) -> None:
        """Stop every peer (SIGTERM, then SIGKILL) and the devnet."""
        for peer in self.peers:
            if peer.alive():
                peer.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for peer in self.peers:
            self.stop_peer(peer)
        stop_devnet(self.workdir / "devnet")

    def fresh_run(
        self, run: str, template: NodeConfig, peers: int | None = None, seed: int = 0,
        epsilon_budget: float = DEFAULT_EPSILON_BUDGET,
    ) -> None:
        """Stop the peers and set up a new run on the same corpus and anvil: a fresh
        AuditLedger (every dev node registered again, with the template's sample cap and
        `epsilon_budget`; the template's genesis), and for the first `peers` nodes (default: as many as now)
        a fresh folder `workdir/<run>/peer-<i>` (checkpoint, node.toml, peer.log) with
        the same key and data.

        Each run starts at round 1, which the old ledger would refuse (a node's rounds
        strictly increase), and writing and ingesting the corpus again costs more than
        the run: tests that compare runs (tests/integration/test_byzantine.py) use this.
        """
        for peer in self.peers:
            self.stop_peer(peer)
        count = len(self.peers) if peers is None else peers
        admin = AuditLedger.deploy(self.devnet.rpc_url, self.devnet.admin_key)
        cap = template.local_steps * template.batch_size
        for node in self.devnet.nodes:
            admin.register_node(node.address, node.peer_id, cap, epsilon_budget=epsilon_budget)
        admin.set_genesis_model(genesis_hash(template))
        deployed = admin.deployment.block_number if admin.deployment else 0
        self.devnet = replace(self.devnet, contract=admin.address, deployed_block=deployed)
        self.peers = []
        _write_peers(self, count, template, seed, root=self.workdir / run)

    def unmerged(self, others: Iterable[str] = ()) -> dict[str, list[tuple[str, int]]]:
        """Per peer, the (author, round) of the other peers' contributions recorded on
        chain (and of the nodes at the addresses `others`, e.g. a test's adversary) that
        it has neither merged nor refused yet.

        The chain, not the journals, says what every peer must settle (DESIGN.md, "Trust
        model"): a journal also holds entries the chain rejected, which no peer will ever
        see. Authors are named by peer name, else by address.
        """
        names = {p.address: p.name for p in self.peers}
        authors = set(names) | set(others)
        recorded = [c for c in self.ledger().contributions() if c.node in authors]
        missing: dict[str, list[tuple[str, int]]] = {}
        for peer in self.peers:
            state = peer.store.load_state()
            seen = set(state.merged) | set(state.refused)
            own = peer.address
            todo = [
                (names.get(c.node, c.node), c.round) for c in recorded
                if c.node != own and "0x" + c.delta_hash.hex() not in seen
            ]
            if todo:
                missing[peer.name] = todo
        return missing

    def everyone_merged_everything(self) -> bool:
        """Has every peer merged (or refused) every other peer's recorded contributions?"""
        return not self.unmerged()

    def wait(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.5) -> bool:
        """Poll `predicate` until it holds or `timeout` passes; a dead peer is an error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            for peer in self.peers:
                if peer.process is not None and peer.process.poll() not in (None, 0):
                    raise RuntimeError(
                        f"{peer.name} exited with {peer.process.returncode}; see {peer.log_path}:\n"
                        + tail(peer.log_path)
                    )
            time.sleep(poll)
        return predicate()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def genesis_hash(config: NodeConfig) -> bytes:
    model = build_model(config.model, num_classes=config.num_classes, in_size=config.image_size, seed=config.genesis_seed)
    return state_hash(model.state_dict())


def create(
    workdir: Path,
    peers: int = 4,
    *,
    template: NodeConfig | None = None,
    alpha: float = 0.5,
    seed: int = 0,
    max_images: int | None = None,
    epsilon_budget: float = DEFAULT_EPSILON_BUDGET,
    step: Callable[[str], None] = lambda _msg: None,
) -> LocalNet:
    """Write corpus, ingest per hospital, start a devnet, set the genesis, write configs.

    Every node is registered with the same sample cap (local steps x batch size) and
    lifetime privacy budget `epsilon_budget` (`LocalNet.ledger(admin key)
    .set_privacy_budget` changes one).

    `workdir` is wiped first if an earlier run made it (it holds the MARKER file); any
    other non-empty folder is refused.
    """
    workdir = Path(workdir).resolve()
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise FileExistsError(f"{workdir} is not empty and was not made by medgossip; choose another folder")
        if (workdir / "devnet" / "devnet.json").exists():
            stop_devnet(workdir / "devnet")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).touch()
    template = template or NodeConfig()

    step(f"writing the demo corpus: {peers} hospitals, non-IID (alpha={alpha})")
    corpus = make_demo(workdir / "corpus", hospitals=peers, alpha=alpha, seed=seed, max_images=max_images)
    for i, folder in enumerate(corpus.hospitals):
        step(f"ingesting hospital {i}: de-identify, pseudonymise, consent tokens")
        ingest(folder, corpus.labels_csv, workdir / f"peer-{i}" / "data")
    step("ingesting the common test set")
    ingest(corpus.test_dir, corpus.labels_csv, workdir / "test-data")
    step("decoding the ingested images once (cached for the peers)")
    for folder in [*(workdir / f"peer-{i}" / "data" for i in range(peers)), workdir / "test-data"]:
        load_image_set(folder, size=template.image_size)

    step("starting the devnet (anvil), deploying AuditLedger, registering peers")
    info = start_devnet(workdir / "devnet", nodes=peers, port=free_port(), peer_id_of=peer_id_bytes_from_secret,
                        die_with_parent=True, sample_cap=template.local_steps * template.batch_size,
                        epsilon_budget=epsilon_budget)
    net = LocalNet(workdir, info, corpus, workdir / "test-data")
    try:
        net.ledger(info.admin_key).set_genesis_model(genesis_hash(template))
        _write_peers(net, peers, template, seed)
    except BaseException:  # the caller gets no LocalNet to stop: stop its chain here
        stop_devnet(workdir / "devnet")
        raise
    return net


def _write_peers(net: LocalNet, peers: int, template: NodeConfig, seed: int, root: Path | None = None) -> None:
    """Per peer: its key, its node.toml (ports, bootstrap list, folders), its handle.

    `root`: the folder of a later run (`LocalNet.fresh_run`): the peers keep their key
    and data in workdir/peer-<i>, and name the run's ledger explicitly (devnet.json
    names the first one).
    """
    workdir, info = net.workdir, net.devnet

    ports = [free_port() for _ in range(peers)]
    addrs = [
        f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_from_secret(node.secret)}"
        for port, node in zip(ports, info.nodes)
    ]
    for i, node in enumerate(info.nodes[:peers]):
        home = workdir / f"peer-{i}"
        folder = home if root is None else root / f"peer-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        if root is None:
            atomic_write(home / "node.key", node.private_key.removeprefix("0x").encode())
        config = replace(
            template,
            key_file=home / "node.key",
            data_dir=home / "data",
            checkpoint_dir=folder / "checkpoint",
            devnet=net.devnet_file,
            rpc_url="" if root is None else info.rpc_url,
            contract="" if root is None else info.contract,
            listen=(f"/ip4/127.0.0.1/tcp/{ports[i]}",),
            bootstrap=tuple(a for j, a in enumerate(addrs) if j != i),
            seed=seed * 1000 + i,
            eval_data=net.test_data,
        )
        handle = PeerHandle(f"peer-{i}", folder, config)
        handle.config_path.write_text(to_toml(config))
        net.peers.append(handle)
