"""What a peer advertises (never 0.0.0.0), and that it never dials itself: real hosts on 127.0.0.1."""

from __future__ import annotations

import socket

import multiaddr
import pytest
import trio

from gossip import Announcement, GossipConfig, GossipNetwork
from gossip.addresses import SelfAddresses, advertised_addrs, interface_ips, ip_and_port
from gossip.errors import GossipConfigError, PeerUnreachable
from gossip.host import build_host
from gossip.identity import generate_secret, peer_id_from_secret
from gossip.transfer import keccak256

from .gossip_helpers import collect_announcements, in_mesh, make_payload, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unspecified(addrs: list[str]) -> list[str]:
    return [a for a in addrs if (found := ip_and_port(a)) is not None and found[0].is_unspecified]


def peerstore_addrs(net: GossipNetwork, peer_id: str) -> set[str]:
    from libp2p.peer.id import ID

    addrs = net._parts.host.get_peerstore().addrs(ID.from_base58(peer_id))
    return {str(a).split("/p2p/")[0] for a in addrs}


# ---------------------------------------------------------------- pure address rules
def test_a_wildcard_listen_address_becomes_the_interface_addresses() -> None:
    wildcard = multiaddr.Multiaddr("/ip4/0.0.0.0/tcp/4001")
    concrete = multiaddr.Multiaddr("/ip4/198.18.0.11/tcp/4002")

    advertised = [str(a) for a in advertised_addrs([wildcard, concrete], [])]

    assert advertised[:-1] == [f"/ip4/{ip}/tcp/4001" for ip in interface_ips("ip4")]
    assert advertised[-1] == "/ip4/198.18.0.11/tcp/4002"
    assert not unspecified(advertised)


def test_announce_addresses_replace_everything_else() -> None:
    announce = [multiaddr.Multiaddr("/ip4/198.18.0.11/tcp/4001")]
    candidates = [multiaddr.Multiaddr("/ip4/0.0.0.0/tcp/4001")]

    assert [str(a) for a in advertised_addrs(candidates, announce)] == ["/ip4/198.18.0.11/tcp/4001"]


def test_loopback_is_advertised_only_when_nothing_else_exists() -> None:
    found = interface_ips("ip4")

    everything = interface_ips("ip4", with_loopback=True)

    assert "127.0.0.1" in everything
    assert found == [ip for ip in everything if not ip.startswith("127.")] or found == ["127.0.0.1"]


@pytest.mark.parametrize("bad", ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001", "not-a-multiaddr"])
def test_an_unusable_announce_address_is_refused_at_start(bad: str) -> None:
    with pytest.raises(GossipConfigError, match="announce"):
        build_host(generate_secret(), announce=[bad])


def test_self_addresses_cover_wildcards_loopback_and_announced() -> None:
    own_id = peer_id_from_secret(generate_secret())
    me = SelfAddresses(
        listening=lambda: [multiaddr.Multiaddr("/ip4/0.0.0.0/tcp/4001")],
        advertised=lambda: [multiaddr.Multiaddr(f"/ip4/203.0.113.7/tcp/4101/p2p/{own_id}")],
    )
    local_ip = interface_ips("ip4")[0]

    assert me.is_self(multiaddr.Multiaddr("/ip4/0.0.0.0/tcp/9999"))  # unspecified: always us
    assert me.is_self(multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/4001"))
    assert me.is_self(multiaddr.Multiaddr(f"/ip4/{local_ip}/tcp/4001"))
    assert me.is_self(multiaddr.Multiaddr("/ip4/203.0.113.7/tcp/4101"))
    assert not me.is_self(multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/4002"))
    assert not me.is_self(multiaddr.Multiaddr("/ip4/198.18.0.12/tcp/4001"))


# ---------------------------------------------------------------- real hosts
async def test_on_0000_with_announce_exactly_the_announced_address_is_advertised_and_served() -> None:
    port = free_port()
    announced = f"/ip4/127.0.0.1/tcp/{port}"
    hub_config = GossipConfig(generate_secret(), "announce")
    async with GossipNetwork(hub_config) as hub:
        author_config = GossipConfig(generate_secret(), "announce", listen=[f"/ip4/0.0.0.0/tcp/{port}"],
                                     announce=[announced], bootstrap=hub.listen_addrs)
        reader_config = GossipConfig(generate_secret(), "announce", bootstrap=hub.listen_addrs)
        async with GossipNetwork(author_config) as author, GossipNetwork(reader_config) as reader, \
                trio.open_nursery() as nursery:
            inbox: list = []
            await nursery.start(collect_announcements, reader, inbox)
            await wait_until(lambda: {author.peer_id, reader.peer_id} <= set(hub.member_peers()),
                             15, "both to join the hub")
            assert author.listen_addrs == [f"{announced}/p2p/{author.peer_id}"]

            # Execute: the author announces; the reader learns its address from the
            # announcement (relayed by the hub) and fetches from it.
            payload = make_payload(200_000, 7)
            await wait_until(lambda: in_mesh(author, hub.peer_id) and in_mesh(hub, reader.peer_id),
                             15, "a mesh path author -> hub -> reader")
            await author.announce(Announcement(author.peer_id, 1, keccak256(payload), len(payload),
                                               "fp32", {}), payload=payload)
            await wait_until(lambda: bool(inbox), 10, "the announcement at the reader")
            fetched = await reader.fetch(keccak256(payload), [inbox[0].sender])

            # Assert: the bytes, and the only address anyone learnt for the author.
            assert fetched == payload
            assert peerstore_addrs(reader, author.peer_id) == {announced}
            await wait_until(lambda: peerstore_addrs(hub, author.peer_id) == {announced}, 10,
                             "identify to tell the hub the announced address")
            nursery.cancel_scope.cancel()


async def test_on_0000_without_announce_no_unspecified_address_is_advertised() -> None:
    config = GossipConfig(generate_secret(), "wildcard", listen=["/ip4/0.0.0.0/tcp/0"])
    async with GossipNetwork(config) as wild, \
            GossipNetwork(GossipConfig(generate_secret(), "wildcard")) as other:
        advertised = wild.listen_addrs
        ports = {ip_and_port(a)[1] for a in advertised}  # type: ignore[index]

        assert advertised and not unspecified(advertised)
        assert [ip_and_port(a)[0].exploded for a in advertised] == interface_ips("ip4")  # type: ignore[index]
        assert len(ports) == 1 and 0 not in ports
        # Every advertised address is dialable, and identify spreads exactly these.
        assert await other.connect(advertised[0]) == wild.peer_id
        await wait_until(lambda: peerstore_addrs(other, wild.peer_id)
                         == {a.split("/p2p/")[0] for a in advertised}, 10, "identify")


async def test_its_own_address_as_bootstrap_is_never_dialled() -> None:
    port = free_port()
    secret = generate_secret()
    own = f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_from_secret(secret)}"
    # A copied config: another peer's ID at our own address (0.0.0.0 listens on 127.0.0.1 too).
    impostor = f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_from_secret(generate_secret())}"
    config = GossipConfig(secret, "self", listen=[f"/ip4/0.0.0.0/tcp/{port}"],
                          bootstrap=[own, impostor], reconnect_interval=0.2)
    async with GossipNetwork(config) as net:
        await wait_until(lambda: net.stats.dropped.get("dial_self", 0) >= 2, 10,
                         "the dial gate to refuse our own address twice")

        assert net.stats.dropped.get("bootstrap_self") == 1
        assert net.connected_peers() == []
        with pytest.raises(PeerUnreachable, match="itself"):
            await net.connect(own)
        with pytest.raises(PeerUnreachable):
            await net.connect(f"/ip4/0.0.0.0/tcp/{port}/p2p/{peer_id_from_secret(generate_secret())}")


async def test_a_peer_is_reached_at_its_second_address_when_the_first_is_dead() -> None:
    # py-libp2p dials one TCP address per peer; a host on 0.0.0.0 advertises several.
    async with GossipNetwork(GossipConfig(generate_secret(), "multi")) as target:
        dead = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{target.peer_id}"
        config = GossipConfig(generate_secret(), "multi", reconnect_interval=0.2,
                              bootstrap=[dead, *target.listen_addrs])
        async with GossipNetwork(config) as dialler:
            await wait_until(lambda: target.peer_id in dialler.connected_peers(), 10,
                             "a connection through the second address")
