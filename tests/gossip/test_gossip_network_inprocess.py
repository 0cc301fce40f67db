"""Five real hosts in one process on 127.0.0.1: announcements, transfers, liars, membership."""

from __future__ import annotations

import pytest
import trio

from gossip import Announcement, GossipConfig, GossipNetwork
from gossip.errors import FetchFailed, HashMismatch, PeerRefused, PeerUnreachable
from gossip.identity import generate_secret
from gossip.transfer import keccak256

from .gossip_helpers import (
    collect_announcements,
    count_failed_dials,
    in_mesh,
    make_payload,
    networks,
    wait_for_mesh,
    wait_until,
)


@pytest.mark.slow  # a multi-host network scenario
async def test_five_hosts_announce_transfer_and_catch_a_liar() -> None:
    async with networks(5) as nets, trio.open_nursery() as nursery:
        inboxes: list[list] = [[] for _ in nets]
        for net, inbox in zip(nets, inboxes):
            await nursery.start(collect_announcements, net, inbox)
        await wait_for_mesh(nets)
        author = nets[1]
        small, medium = make_payload(100_000, 1), make_payload(10_000_000, 2)
        for round_, payload in enumerate((small, medium)):
            ann = Announcement(author.peer_id, round_, keccak256(payload), len(payload), "fp32", {})
            await author.announce(ann, payload=payload)

        # Execute: every other host hears both announcements and fetches both payloads.
        await wait_until(
            lambda: all(len(inbox) >= 2 for i, inbox in enumerate(inboxes) if i != 1),
            15,
            "announcements at every host",
        )
        for index, net in enumerate(nets):
            if index == 1:
                continue
            assert all(r.sender == author.peer_id for r in inboxes[index])
            for received in inboxes[index]:
                payload = await net.fetch(received.delta_hash, [received.sender])
                assert keccak256(payload) == received.delta_hash
        assert inboxes[1] == []  # own announcements are not echoed

        # A holder that lies is caught; another holder is used; the liar is excluded.
        liar, honest, fetcher = nets[2], nets[3], nets[4]
        payload = make_payload(300_000, 3)
        digest = keccak256(payload)
        liar.provide(digest, payload)
        liar._store.put(digest, b"x" + payload[1:])  # test-only: corrupt what the liar serves
        honest.provide(digest, payload)
        await fetcher.connect(liar.listen_addrs[0])
        await fetcher.connect(honest.listen_addrs[0])
        fetcher.mark_misbehaving(honest.peer_id, seconds=30)  # sorts the honest one last
        got = await fetcher.fetch(digest, [honest.peer_id, liar.peer_id])
        assert got == payload
        assert fetcher.stats.fetch_attempts_failed == 1
        fetcher.mark_misbehaving(honest.peer_id, seconds=0)
        await wait_until(lambda: honest.peer_id in fetcher.member_peers(), 10, "mesh")
        assert liar.peer_id not in fetcher.sample_peers(10)
        assert honest.peer_id in fetcher.sample_peers(10)

        # A holder without the payload answers "not found" (or cannot be reached).
        with pytest.raises(FetchFailed) as failed:
            await nets[0].fetch(keccak256(b"nobody has this"), [nets[2].peer_id])
        assert isinstance(failed.value.reasons[nets[2].peer_id], PeerRefused | PeerUnreachable)
        nursery.cancel_scope.cancel()


async def test_a_fetched_payload_spreads_onwards_after_its_author_left() -> None:
    """Epidemic spread: a peer that fetched a payload serves it once the author is gone."""
    secrets = [generate_secret() for _ in range(3)]
    payload = make_payload(2_000_000, 6)
    digest = keccak256(payload)
    async with GossipNetwork(GossipConfig(secrets[0], "spread")) as relay:
        boot = relay.listen_addrs
        async with GossipNetwork(GossipConfig(secrets[1], "spread", bootstrap=boot)) as author:
            await wait_until(lambda: author.peer_id in relay.connected_peers(), 10, "author")
            author.provide(digest, payload)
            assert await relay.fetch(digest, [author.peer_id]) == payload
        await wait_until(lambda: author.peer_id not in relay.connected_peers(), 10,
                         "the author to leave")
        async with GossipNetwork(GossipConfig(secrets[2], "spread", bootstrap=boot)) as late:
            await wait_until(lambda: relay.peer_id in late.connected_peers(), 10, "late joiner")
            assert await late.fetch(digest, [relay.peer_id]) == payload
            assert relay.stats.payloads_served == 1


async def test_only_liars_raise_fetch_failed_with_reasons() -> None:
    async with networks(2) as (a, b):
        payload = make_payload(50_000, 4)
        digest = keccak256(payload)
        b._store.put(digest, payload[::-1])
        await wait_until(lambda: b.peer_id in a.connected_peers(), 10, "connection")
        with pytest.raises(FetchFailed) as failed:
            await a.fetch(digest, [b.peer_id])
        assert isinstance(failed.value.reasons[b.peer_id], HashMismatch)
        assert b.peer_id not in a.sample_peers(5)


async def test_unregistered_peer_is_refused_for_announcements_and_fetches() -> None:
    members: set[str] = set()

    async def is_member(peer_id: str) -> bool:
        return peer_id in members

    member_secrets = [generate_secret() for _ in range(2)]
    from gossip.identity import peer_id_from_secret

    members.update(peer_id_from_secret(s) for s in member_secrets)
    async with GossipNetwork(
        GossipConfig(member_secrets[0], "club", is_member=is_member)
    ) as hub, GossipNetwork(
        GossipConfig(member_secrets[1], "club", is_member=is_member, bootstrap=hub.listen_addrs)
    ) as member, GossipNetwork(
        GossipConfig(generate_secret(), "club", bootstrap=hub.listen_addrs)
    ) as outsider, trio.open_nursery() as nursery:
        hub_inbox: list = []
        await nursery.start(collect_announcements, hub, hub_inbox)
        await wait_until(lambda: member.peer_id in hub.member_peers(), 15, "member mesh")
        await wait_until(lambda: hub.peer_id in outsider.connected_peers(), 10, "outsider dial")
        payload = make_payload(10_000, 5)
        digest = keccak256(payload)
        hub.provide(digest, payload)

        await outsider.announce(Announcement(outsider.peer_id, 1, digest, 1, "fp32", {}))
        with pytest.raises(FetchFailed) as failed:
            await outsider.fetch(digest, [hub.peer_id])
        assert isinstance(failed.value.reasons[hub.peer_id], PeerRefused | PeerUnreachable)
        # The member's announcement arrives; the outsider's never does.
        await member.announce(Announcement(member.peer_id, 2, digest, 1, "fp32", {}))
        await wait_until(lambda: len(hub_inbox) >= 1, 10, "the member's announcement")
        assert [r.sender for r in hub_inbox] == [member.peer_id]
        assert outsider.peer_id not in hub.member_peers()
        assert hub.stats.dropped.get("not_member", 0) >= 1
        assert await member.fetch(digest, [hub.peer_id]) == payload
        nursery.cancel_scope.cancel()


async def test_plaintext_only_dialer_is_refused() -> None:
    import libp2p
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.network.exceptions import SwarmException
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
    import multiaddr

    async with networks(1) as (target,):
        key_pair = create_new_key_pair(generate_secret())
        dialer = libp2p.new_host(
            key_pair=key_pair,
            sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(key_pair)},
        )
        async with dialer.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            info = info_from_p2p_addr(multiaddr.Multiaddr(target.listen_addrs[0]))
            with trio.fail_after(15):  # a hang is a failure (TooSlowError), not a refusal
                with pytest.raises(SwarmException) as refused:
                    await dialer.connect(info)
            assert "failed to negotiate the secure protocol" in str(refused.value.__cause__)
            assert dialer.get_connected_peers() == []
        assert target.connected_peers() == []


@pytest.mark.slow  # a multi-host network scenario
async def test_a_host_started_before_its_bootstrap_peer_connects_when_it_comes_up() -> None:
    """Hospitals start their nodes in any order: the first dial fails, a later one must not.

    py-libp2p's swarm refuses to redial a peer for 60 s after a failed dial; the host
    keeps its bootstrap peers dialable, so the two meet within a few reconnect rounds.
    """
    import socket

    from gossip.identity import peer_id_from_secret

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    late_secret = generate_secret()
    late_addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_from_secret(late_secret)}"
    early_config = GossipConfig(generate_secret(), "order", bootstrap=[late_addr],
                                reconnect_interval=0.5)
    async with GossipNetwork(early_config) as early:
        failed_dials = count_failed_dials(early)
        await wait_until(lambda: failed_dials[0] >= 2, 15, "two failed dials of the late peer")
        late_config = GossipConfig(late_secret, "order", listen=[f"/ip4/127.0.0.1/tcp/{port}"])
        async with GossipNetwork(late_config) as late, trio.open_nursery() as nursery:
            await wait_until(lambda: late.peer_id in early.member_peers()
                             and early.peer_id in late.member_peers(), 10, "the two to meet")
            inbox: list = []
            await nursery.start(collect_announcements, late, inbox)
            await wait_until(lambda: in_mesh(early, late.peer_id), 10, "a GossipSub mesh link")
            await early.announce(Announcement(early.peer_id, 1, bytes(32), 0, "fp32", {}))
            await wait_until(lambda: bool(inbox), 10, "the announcement")
            assert [r.sender for r in inbox] == [early.peer_id]
            nursery.cancel_scope.cancel()


@pytest.mark.slow  # waits for mDNS discovery rounds (~11 s)
async def test_mdns_finds_a_peer_on_the_local_network_without_bootstrap() -> None:
    configs = [GossipConfig(generate_secret(), "mdns-test", enable_mdns=True) for _ in range(2)]
    async with GossipNetwork(configs[0]) as first, GossipNetwork(configs[1]) as second:
        await wait_until(lambda: second.peer_id in first.member_peers()
                         and first.peer_id in second.member_peers(), 25, "mDNS discovery")
