"""Build the libp2p host: secp256k1 identity, Noise only, Yamux only, GossipSub at ~1 s.

Security defaults (py-libp2p's own defaults accept plaintext and secio dialers and offer
Mplex): the only security transport offered or accepted is Noise, the only muxer Yamux,
pubsub signing is strict, inbound pubsub RPCs are capped at 1 MiB (GossipSub's own
limit) and the pubsub message-id seqno is seeded from the nanosecond clock.

A tuned host (the default) offers the tuned Yamux as ``/medgossip-yamux/1.0.0`` before the
standard ``/yamux/1.0.0``, so it talks tuned to tuned hosts and standard to everyone else;
an untuned host offers only ``/yamux/1.0.0`` with py-libp2p's own classes (see _tuning.py).

What the host advertises (identify, its signed peer record, our announcements) is never an
unspecified address: the announce addresses if configured, else the listen addresses
with ``0.0.0.0``/``::`` replaced by the interface addresses (addresses.py).  Identify's
observed-address discovery is off, so nothing else is added behind our back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gossip.addresses import SelfAddresses, advertised_addrs, parse_announce
from gossip.errors import GossipConfigError, InvalidIdentity
from gossip.logs import configure_libp2p_logging

__all__ = ["HostParts", "PUBSUB_PROTOCOLS", "build_host", "parse_multiaddrs"]


def _pubsub_protocols() -> list[Any]:
    from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12

    return [PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID]


PUBSUB_PROTOCOLS = ("/meshsub/1.2.0", "/meshsub/1.1.0", "/meshsub/1.0.0")


@dataclass(frozen=True)
class HostParts:
    host: Any
    pubsub: Any
    gossipsub: Any
    self_addrs: SelfAddresses


def parse_multiaddrs(addrs: list[str] | tuple[str, ...]) -> list[Any]:
    import multiaddr

    parsed = []
    for text in addrs:
        try:
            parsed.append(multiaddr.Multiaddr(text))
        except Exception as exc:  # multiaddr raises several unrelated types
            raise GossipConfigError(f"not a multiaddr: {text!r}") from exc
    return parsed


def build_host(
    secret: bytes,
    *,
    heartbeat_interval: float = 1.0,
    enable_mdns: bool = False,
    tuned: bool = True,
    max_inbound_rpc: int = 1024 * 1024,
    announce: Sequence[str] = (),
) -> HostParts:
    """Construct (not start) host, Pubsub and GossipSub for ``secret``.

    ``announce``: multiaddrs to advertise instead of the listen addresses.
    Raises GossipConfigError for an announce address that cannot work.
    """
    import libp2p
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as create_x25519
    from libp2p.custom_types import TProtocol
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
    from libp2p.security.noise.transport import Transport as NoiseTransport

    from gossip import _tuning

    configure_libp2p_logging()
    _tuning.require_library()
    announce_addrs = parse_announce(announce)
    noise = _tuning.TunedNoiseTransport if tuned else NoiseTransport
    try:
        key_pair = create_new_key_pair(secret)
    except ValueError as exc:
        raise InvalidIdentity("secret is not a valid secp256k1 key") from exc
    host = libp2p.new_host(
        key_pair=key_pair,
        sec_opt={
            TProtocol(NOISE_PROTOCOL_ID): noise(
                key_pair, noise_privkey=create_x25519().private_key
            )
        },
        muxer_opt=_tuning.muxer_options(tuned),
        enable_mDNS=enable_mdns,
        addrs_factory=lambda candidates: advertised_addrs(candidates, announce_addrs),
        disable_identify_address_discovery=True,
    )
    gossipsub = GossipSub(
        protocols=_pubsub_protocols(),
        # Announcements are tiny: a wide mesh costs little and keeps a 16-peer star
        # (everyone bootstrapped to one hub) inside the hub's mesh; py-libp2p's IHAVE
        # gossip did not reach non-mesh peers in our measurements.
        degree=8,
        degree_low=6,
        degree_high=16,
        heartbeat_interval=heartbeat_interval,  # type: ignore[arg-type]
        heartbeat_initial_delay=0.1,
        time_to_live=30,
        do_px=True,
    )
    pubsub = Pubsub(
        host,
        gossipsub,
        strict_signing=True,
        max_inbound_rpc_size=max_inbound_rpc,
    )
    _tuning.seed_pubsub_seqno(pubsub)
    self_addrs = SelfAddresses(host.get_transport_addrs, host.get_addrs)
    return HostParts(host=host, pubsub=pubsub, gossipsub=gossipsub, self_addrs=self_addrs)
