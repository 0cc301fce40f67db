"""libp2p multiaddrs given on the command line, checked before anything is written:
each wrong one ends the command with one line that says what to give instead.

A hospital's peer listens on the fixed DEFAULT_PORT (4001), so that its bootstrap
address, /ip4/<its address>/tcp/4001/p2p/<its peer ID>, is known before it runs.
"""

from __future__ import annotations

import ipaddress
from typing import Any, NoReturn

from node.cli._boundary import fail

__all__ = ["DEFAULT_LISTEN", "DEFAULT_PORT", "check_announce", "check_bootstrap", "check_listen"]

DEFAULT_PORT = 4001
"""The documented libp2p port of a medgossip peer (as IPFS's 4001: one per host)."""

DEFAULT_LISTEN = f"/ip4/0.0.0.0/tcp/{DEFAULT_PORT}"

_IP = ("ip4", "ip6")
_HOSTS = ("ip4", "ip6", "dns", "dns4", "dns6")
_EXAMPLE = {
    "--listen": DEFAULT_LISTEN,
    "--announce": f"/ip4/198.18.0.11/tcp/{DEFAULT_PORT}",
    "--bootstrap": f"/ip4/198.18.0.12/tcp/{DEFAULT_PORT}/p2p/16Uiu2HAm...",
}


def check_listen(value: str) -> str:
    """An address to listen on: /ip4|ip6/ADDR/tcp/PORT (0.0.0.0 and port 0 allowed)."""
    parts = _parts(value, "--listen")
    if len(parts) != 2 or parts[0][0] not in _IP or parts[1][0] != "tcp":
        _wrong(value, "--listen", "/ip4/ADDR/tcp/PORT or /ip6/ADDR/tcp/PORT, without /p2p/")
    return value


def check_announce(value: str) -> str:
    """An address other peers dial: a concrete host and a fixed port, no /p2p/."""
    parts = _parts(value, "--announce")
    if len(parts) != 2 or parts[0][0] not in _HOSTS or parts[1][0] != "tcp":
        _wrong(value, "--announce", "/ip4|ip6|dns4/HOST/tcp/PORT, without /p2p/ (the peer adds its own)")
    _dialable(value, "--announce", parts)
    return value


def check_bootstrap(value: str, own_peer_id: str) -> str:
    """A peer to dial at start: a concrete host and port, and /p2p/ a medgossip peer ID
    (a secp256k1 key: the one the admin registers) that is not this node's own."""
    from gossip.errors import InvalidIdentity
    from gossip.identity import eth_address_from_peer_id

    parts = _parts(value, "--bootstrap")
    if len(parts) != 3 or parts[0][0] not in _HOSTS or parts[1][0] != "tcp" or parts[2][0] != "p2p":
        _wrong(value, "--bootstrap", "/ip4|ip6|dns4/HOST/tcp/PORT/p2p/PEER_ID")
    _dialable(value, "--bootstrap", parts)
    peer_id = parts[2][1]
    try:
        eth_address_from_peer_id(peer_id)
    except (InvalidIdentity, ValueError):
        fail(f"--bootstrap {value!r}: {peer_id} is not a medgossip peer ID (a secp256k1 key's, "
             "as `medgossip node init` prints it)")
    if peer_id == own_peer_id:
        fail(f"--bootstrap {value!r} is this node itself: give the addresses of other hospitals' peers")
    return value


def _parts(value: str, flag: str) -> list[tuple[str, str]]:
    """(protocol name, value) pairs of a multiaddr, or one line saying it is not one."""
    import multiaddr

    try:
        return [(protocol.name, str(item)) for protocol, item in multiaddr.Multiaddr(value).items()]
    except Exception as exc:  # multiaddr raises several unrelated types
        reason = str(exc).split(" (string:")[0]
        fail(f"{flag} {value!r} is not a multiaddr ({reason}): e.g. {_EXAMPLE[flag]}")


def _dialable(value: str, flag: str, parts: list[Any]) -> None:
    kind, host = parts[0]
    if kind in _IP and ipaddress.ip_address(host).is_unspecified:
        fail(f"{flag} {value!r}: {host} is no address to dial; give this host's address "
             "that the other hospitals reach")
    if int(parts[1][1]) == 0:
        fail(f"{flag} {value!r}: port 0 is no port to dial; give the port the peer listens on "
             f"(default {DEFAULT_PORT})")


def _wrong(value: str, flag: str, shape: str) -> NoReturn:
    fail(f"{flag} {value!r} must be {shape}: e.g. {_EXAMPLE[flag]}")
