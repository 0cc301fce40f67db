"""Tuned and untuned hosts together: the tuned transport is negotiated, never assumed.

A tuned stream assumes a 16 MiB window at both ends; a standard peer assumes 256 KiB.  If
a tuned host assumed its window with a standard peer, a transfer from the standard side
stalls after 256 KiB (the tuned receiver holds credit back for 8 MiB) and the tuned side
overruns the standard receiver's window.  So both directions move 10 MiB here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from gossip import GossipConfig, GossipNetwork, _tuning
from gossip.identity import generate_secret
from gossip.transfer import keccak256

from .gossip_helpers import make_payload, wait_until

TEN_MIB = 10 * 1024 * 1024


@asynccontextmanager
async def pair(first_tuned: bool, second_tuned: bool) -> AsyncIterator[list[GossipNetwork]]:
    """Two connected hosts in this process; the second dials the first."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            GossipNetwork(GossipConfig(generate_secret(), "mix", tuned_transport=first_tuned))
        )
        second = await stack.enter_async_context(
            GossipNetwork(GossipConfig(generate_secret(), "mix", tuned_transport=second_tuned,
                                       bootstrap=first.listen_addrs))
        )
        await wait_until(lambda: first.peer_id in second.connected_peers()
                         and second.peer_id in first.connected_peers(), 15, "the connection")
        yield [first, second]


def muxed_conn(net: GossipNetwork, peer_id: str) -> Any:
    from libp2p.peer.id import ID

    connections = net._parts.host.get_network().get_connections(ID.from_base58(peer_id))
    assert len(connections) == 1
    return connections[0].muxed_conn


async def move_both_ways(a: GossipNetwork, b: GossipNetwork) -> None:
    """a serves 10 MiB to b, then b serves another 10 MiB to a; a stall fails the test."""
    for source, sink, seed in ((a, b, 1), (b, a, 2)):
        payload = make_payload(TEN_MIB, seed)
        source.provide(keccak256(payload), payload)
        with trio.fail_after(60):
            got = await sink.fetch(keccak256(payload), [source.peer_id])
        assert got == payload
        assert sink.stats.fetch_attempts_failed == 0


def assert_standard(conn: Any) -> None:
    from libp2p.stream_muxer.yamux import yamux

    assert type(conn) is yamux.Yamux
    assert conn.negotiated_muxer_protocol == "/yamux/1.0.0"
    assert type(conn.secured_conn.conn).__name__ == "NoiseTransportReadWriter"


async def test_a_tuned_and_an_untuned_host_talk_standard_yamux_and_move_10_mib() -> None:
    from libp2p.stream_muxer.yamux import yamux

    # The untuned host dials the tuned one, then the tuned one dials an untuned one.
    for first_tuned, second_tuned in ((True, False), (False, True)):
        async with pair(first_tuned, second_tuned) as (first, second):
            untuned, tuned = (second, first) if first_tuned else (first, second)
            assert_standard(muxed_conn(untuned, tuned.peer_id))
            conn = muxed_conn(tuned, untuned.peer_id)
            assert type(conn) is yamux.Yamux
            assert conn.negotiated_muxer_protocol == "/yamux/1.0.0"
            await move_both_ways(first, second)
            # Streams of the standard connection kept py-libp2p's own windows and classes.
            assert {type(s) for s in conn.streams.values()} <= {yamux.YamuxStream}


async def test_two_tuned_hosts_negotiate_the_tuned_muxer_and_move_10_mib() -> None:
    async with pair(True, True) as (first, second):
        for net, other in ((first, second), (second, first)):
            conn = muxed_conn(net, other.peer_id)
            assert type(conn) is _tuning.TunedYamux
            assert conn.negotiated_muxer_protocol == _tuning.TUNED_MUXER_PROTOCOL
            assert type(conn.secured_conn.conn) is _tuning.TunedNoiseReadWriter
        await move_both_ways(first, second)
        stream = await muxed_conn(first, second.peer_id).open_stream()
        assert type(stream) is _tuning.TunedYamuxStream
        assert stream.send_window == stream.recv_window == _tuning.TUNED_WINDOW
        await stream.reset()


async def test_a_tuned_host_changes_nothing_process_wide() -> None:
    """Untuned must mean untuned: nothing leaks to other hosts or to child processes."""
    from libp2p.security.noise import io as noise_io
    from libp2p.stream_muxer.yamux import yamux

    before = (yamux.MAX_MESSAGE_SIZE, yamux.DEFAULT_WINDOW_SIZE,
              noise_io.BaseNoiseMsgReadWriter.write_msg,
              noise_io.NoiseTransportReadWriter.read_msg)
    env_before = {k: v for k, v in os.environ.items() if k.startswith("PY_YAMUX_")}
    async with pair(True, True) as (first, second):
        await move_both_ways(first, second)
        after = (yamux.MAX_MESSAGE_SIZE, yamux.DEFAULT_WINDOW_SIZE,
                 noise_io.BaseNoiseMsgReadWriter.write_msg,
                 noise_io.NoiseTransportReadWriter.read_msg)
        assert after == before
        assert {k: v for k, v in os.environ.items() if k.startswith("PY_YAMUX_")} == env_before
        # A standard host started now, next to two tuned ones, is still standard.
        async with pair(False, False) as (third, fourth):
            assert_standard(muxed_conn(third, fourth.peer_id))
            assert_standard(muxed_conn(fourth, third.peer_id))
