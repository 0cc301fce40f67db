"""Which addresses a peer advertises, and which addresses are its own (never dialled).

A host listening on ``/ip4/0.0.0.0/tcp/4001`` must not tell others to dial ``0.0.0.0``:
from another machine that address means "yourself", so a peer that dialled it reached
its own listener and failed the Noise handshake (the peer ID did not match).  So:

* ``advertised_addrs`` is the host's ``AddrsFactory``: the configured announce addresses
  if any, else the listen addresses with each unspecified IP (``0.0.0.0``, ``::``)
  replaced by this machine's interface addresses of that family (loopback only when
  there is nothing else).  Identify, the signed peer record, GossipSub peer exchange and
  our announcements all publish ``host.get_addrs()``, i.e. this list.
* ``SelfAddresses.is_self`` recognises an address that would reach this very host: an
  unspecified IP, one of our listen or advertised addresses, or any local IP on a port
  we listen on with a wildcard.  ``SelfDialGate`` refuses to dial those, whoever asks
  (our reconnect loop, a fetch, GossipSub peer exchange, mDNS).

Interfaces come from psutil (already installed by ``multiaddr``), rescanned every few
seconds: a host that changes networks advertises its new address on the next identify.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gossip.errors import GossipConfigError

__all__ = [
    "SelfAddresses",
    "SelfDialGate",
    "advertised_addrs",
    "interface_ips",
    "ip_and_port",
    "parse_announce",
]

_FAMILIES = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}


def ip_and_port(addr: Any) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int | None] | None:
    """``(ip, tcp port or None)`` of a multiaddr that starts with /ip4 or /ip6, else None."""
    parts = str(addr).split("/")
    if len(parts) < 3 or parts[1] not in _FAMILIES:
        return None
    try:
        ip = ipaddress.ip_address(parts[2].split("%")[0])
    except ValueError:
        return None
    port = None
    if len(parts) >= 5 and parts[3] == "tcp" and parts[4].isdigit():
        port = int(parts[4])
    return ip, port


def _usable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (ip.is_unspecified or ip.is_link_local or ip.is_multicast)


_SCAN_TTL = 5.0
"""seconds an interface scan is reused (get_addrs runs at every identify and announcement;
a scan costs about a millisecond)."""
_scan_cache: tuple[float, list[tuple[int, str]]] | None = None


def _scan() -> list[tuple[int, str]]:
    """(family, address) of every address on an interface that is up; cached briefly."""
    global _scan_cache
    now = time.monotonic()
    if _scan_cache is not None and now - _scan_cache[0] < _SCAN_TTL:
        return _scan_cache[1]
    import psutil

    stats = psutil.net_if_stats()
    found = [
        (entry.family, entry.address)
        for name, addrs in psutil.net_if_addrs().items()
        if name not in stats or stats[name].isup
        for entry in addrs
    ]
    _scan_cache = (now, found)
    return found


def interface_ips(protocol: str, *, with_loopback: bool = False) -> list[str]:
    """This machine's addresses for ``protocol`` ("ip4"/"ip6") on interfaces that are up.

    Loopback is left out unless ``with_loopback`` or unless nothing else exists (a host
    with only ``lo``).  Link-local addresses are left out: they need a zone to be dialled.
    """
    family = _FAMILIES[protocol]
    found: list[str] = []
    loopback: list[str] = []
    for entry_family, address in _scan():
        if entry_family != family:
            continue
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            continue
        if _usable(ip):
            (loopback if ip.is_loopback else found).append(str(ip))
    if with_loopback:
        return list(dict.fromkeys(found + loopback))
    return list(dict.fromkeys(found or loopback))


def _replace_ip(addr: Any, ip: str) -> Any:
    import multiaddr

    parts = str(addr).split("/")
    parts[2] = ip
    return multiaddr.Multiaddr("/".join(parts))


def _without_p2p(addr: Any) -> Any:
    import multiaddr

    text = str(addr)
    return multiaddr.Multiaddr(text.split("/p2p/")[0]) if "/p2p/" in text else addr


def parse_announce(texts: Sequence[str]) -> list[Any]:
    """The announce multiaddrs, checked: parseable, and no unspecified IP.

    Raises GossipConfigError naming the bad entry.
    """
    import multiaddr

    parsed = []
    for text in texts:
        try:
            addr = _without_p2p(multiaddr.Multiaddr(text))
        except Exception as exc:  # multiaddr raises several unrelated types
            raise GossipConfigError(f"announce: not a multiaddr: {text!r}") from exc
        found = ip_and_port(addr)
        if found is not None and found[0].is_unspecified:
            raise GossipConfigError(
                f"announce: {text!r} is an unspecified address; announce the address "
                "other hosts dial (e.g. this host's public or LAN IP)"
            )
        parsed.append(addr)
    return parsed


def advertised_addrs(candidates: Iterable[Any], announce: Sequence[Any]) -> list[Any]:
    """What a host advertises given its listen ``candidates`` (an ``AddrsFactory``)."""
    if announce:
        return list(announce)
    result: list[Any] = []
    for addr in candidates:
        found = ip_and_port(addr)
        if found is None or not found[0].is_unspecified:
            result.append(addr)
            continue
        protocol = str(addr).split("/")[1]
        result.extend(_replace_ip(addr, ip) for ip in interface_ips(protocol))
    unique = {str(a): a for a in result}
    return list(unique.values())


class SelfAddresses:
    """Recognises addresses that lead back to this host.

    ``listening`` and ``advertised`` are read at each check (the listen port of
    ``tcp/0`` is known only once the host runs).
    """

    def __init__(
        self,
        listening: Callable[[], Iterable[Any]],
        advertised: Callable[[], Iterable[Any]],
    ) -> None:
        self._listening = listening
        self._advertised = advertised

    def is_self(self, addr: Any) -> bool:
        found = ip_and_port(addr)
        if found is None:
            return False
        ip, port = found
        if ip.is_unspecified:
            return True  # dialling 0.0.0.0 / :: reaches this machine, never a peer
        if port is None:
            return False
        wildcard_ports: set[int] = set()
        own: set[tuple[str, int]] = set()
        for mine in [*self._listening(), *self._advertised()]:
            mine_found = ip_and_port(mine)
            if mine_found is None or mine_found[1] is None:
                continue
            if mine_found[0].is_unspecified:
                wildcard_ports.add(mine_found[1])
            else:
                own.add((str(mine_found[0]), mine_found[1]))
        if (str(ip), port) in own:
            return True
        if port in wildcard_ports:
            if ip.is_loopback:
                return True
            protocol = "ip4" if ip.version == 4 else "ip6"
            return str(ip) in interface_ips(protocol, with_loopback=True)
        return False

    def dialable(self, addrs: Iterable[Any]) -> list[Any]:
        """``addrs`` without the ones that lead back to this host."""
        return [a for a in addrs if not self.is_self(a)]


class SelfDialGate:
    """The swarm's connection gate, plus: never dial an address of this host.

    Wraps py-libp2p's ConnectionGate (allow/deny lists), which the swarm asks about every
    address it dials and every inbound connection's remote address.  An inbound remote
    address is never "self" (its port is the remote's ephemeral port, not one we hold),
    so only dials are affected.
    """

    def __init__(self, inner: Any, is_self: Callable[[Any], bool], on_refused: Callable[[Any], None]) -> None:
        self._inner = inner
        self._is_self = is_self
        self._on_refused = on_refused

    async def is_allowed(self, addr: Any) -> bool:
        if self._is_self(addr):
            self._on_refused(addr)
            return False
        allowed: bool = await self._inner.is_allowed(addr)
        return allowed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
