"""The peer process: build a `Peer` from its config, run it until done or signalled."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Awaitable, Callable

import trio

from contracts.errors import LedgerError
from contracts.ledger import AuditLedger
from gossip import GossipConfig, GossipNetwork
from gossip.files import atomic_write
from node.config import NodeConfig
from node.errors import PeerError
from node.learner import Learner, LearnerSettings
from node.peer.inbox import key_of
from node.peer.loop import Peer
from node.peer.preflight import check_node

log = logging.getLogger("medgossip.peer")


def learner_settings(config: NodeConfig) -> LearnerSettings:
    from node.privacy import DPConfig

    dp = None
    if config.dp_enabled:
        dp = DPConfig(
            noise_multiplier=config.dp_noise_multiplier,
            max_grad_norm=config.dp_max_grad_norm,
            delta=config.dp_delta,
        )
    return LearnerSettings(
        model=config.model, image_size=config.image_size, num_classes=config.num_classes,
        genesis_seed=config.genesis_seed, seed=config.seed, local_steps=config.local_steps,
        batch_size=config.batch_size, lr=config.lr, merge=config.merge, norm_bound=config.norm_bound, norm_refuse=config.norm_refuse, codec=config.codec,
        topk_fraction=config.topk_fraction, holdout_fraction=config.holdout_fraction, dp=dp,
    )


def build_peer(config: NodeConfig) -> Peer:
    """Everything blocking before the event loop: key, chain, data, learner, checkpoint."""
    import torch

    from gossip.identity import eth_address_from_peer_id, load_or_create_secret, peer_id_from_secret
    from node.data import load_image_set

    torch.set_num_threads(1)
    secret = load_or_create_secret(config.key_file)
    if not config.rpc_url or not config.contract:
        raise PeerError("no chain configured: set network (a network.json), or rpc_url and contract, or devnet (a devnet.json)")
    ledger = AuditLedger(config.rpc_url, config.contract, private_key="0x" + secret.hex(),
                         deployment_block=config.deployment_block)
    peer_id = peer_id_from_secret(secret)
    node = check_node(ledger, eth_address_from_peer_id(peer_id), peer_id)  # before the data is read
    images = load_image_set(config.data_dir, size=config.image_size)
    eval_images = load_image_set(config.eval_data, size=config.image_size) if config.eval_data else None
    learner = Learner(learner_settings(config), images, eval_images)
    peer = Peer(config, secret, ledger, learner)
    peer.prepare(node)
    return peer


async def run_peer(config: NodeConfig, on_ready: Callable[[Peer], Awaitable[None]] | None = None) -> None:
    """Start a peer and run it until its rounds are done or SIGINT/SIGTERM arrives."""
    peer = await trio.to_thread.run_sync(build_peer, config)
    ledger = peer.chain.ledger
    network_id = config.network_id or f"{ledger.chain_id}-{ledger.address.lower()}"

    async def is_member(peer_id: str) -> bool:
        try:
            return await trio.to_thread.run_sync(peer.chain.is_member, peer_id)
        except LedgerError:
            return False  # unknown: refused for now, asked again on the next stream or message

    gossip_config = GossipConfig(
        secret=peer.secret, network_id=network_id, listen=list(config.listen),
        announce=list(config.announce), bootstrap=list(config.bootstrap), is_member=is_member,
        enable_mdns=config.mdns,
        payload_source=lambda delta_hash: peer.store.load_payload(key_of(delta_hash)),
    )
    if peer.metrics is not None:
        peer.metrics.serve(config.metrics_port)
    async with GossipNetwork(gossip_config) as net:
        log.info("listening on %s", " ".join(net.listen_addrs))
        atomic_write(peer.store.folder / "addrs.json", json.dumps(net.listen_addrs).encode(), mode=0o644)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
            if on_ready is not None:
                await on_ready(peer)
            await peer.run(net)
            nursery.cancel_scope.cancel()
    peer.net = None  # closed: status() must not ask it for peers any more
    peer.stopped = True
    await peer.write_status()
    log.info("stopped at round=%d", peer.state.round)


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            scope.cancel()
            return
