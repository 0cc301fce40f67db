"""A peer that stops answering (SIGSTOP: its sockets stay open) is noticed, dropped, and redialled."""

from __future__ import annotations

import signal

import pytest
import trio

from gossip import GossipConfig, GossipNetwork
from gossip.identity import generate_secret

from .gossip_helpers import make_payload, wait_until
from .test_gossip_multiprocess import Proc, procs

pytestmark = pytest.mark.slow  # a second OS process, frozen and thawed

DETECTION_BOUND = 15.0  # seconds: what the network promises


async def test_a_frozen_peer_is_dropped_within_15_s_and_redialled_when_it_thaws() -> None:
    # Prepare: this host dials a peer process (not a bootstrap peer: the redial of a
    # lost peer is under test) that serves one payload.
    config = GossipConfig(generate_secret(), "liveness")
    with procs() as started:
        frozen = Proc("--secret", generate_secret().hex(), "--network", "liveness",
                      "--provide", "100000:3")
        started.append(frozen)
        async with GossipNetwork(config) as net, trio.open_nursery() as nursery:
            await nursery.start(frozen.pump)
            await wait_until(lambda: bool(frozen.ready), 30, "the peer process")
            peer = await net.connect(frozen.ready["ready"][0])
            await wait_until(lambda: peer in net.member_peers(), 10, "the peer to join the topic")

            # Execute: freeze it.  The kernel keeps its TCP connection open and ACKed.
            frozen.popen.send_signal(signal.SIGSTOP)
            frozen_at = trio.current_time()
            await wait_until(lambda: peer not in net.connected_peers(), DETECTION_BOUND + 5,
                             "the frozen peer to be dropped")
            detected_after = trio.current_time() - frozen_at
            frozen.popen.send_signal(signal.SIGCONT)
            await wait_until(lambda: peer in net.connected_peers(), 40, "the redial after the thaw")
            payload = await net.fetch(bytes.fromhex(frozen.ready["hashes"]["100000"]), [peer])

            # Assert
            print(f"frozen peer dropped after {detected_after:.1f} s")
            assert detected_after <= DETECTION_BOUND
            assert net.stats.dead_connections_closed == 1
            assert payload == make_payload(100_000, 3)
            nursery.cancel_scope.cancel()
