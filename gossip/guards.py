"""Armour between the network and our handlers.

* ``MembershipGate`` wraps the injected ``is_member`` check: positive answers are cached for
  a short TTL (the node caches chain lookups too), a check that raises counts as a refusal.
* ``guard_handler`` wraps every inbound stream handler the host speaks (pubsub, identify,
  ping and our delta protocol): it refuses non-members before the protocol code sees a
  byte, and no exception raised by a handler -- a protobuf DecodeError from a garbage
  pubsub frame, a truncated stream, anything -- escapes into py-libp2p's connection
  nursery (where it killed the process).  What is dropped is counted and logged by peer
  and exception type, never with the bytes.

The handler table and ``Pubsub.push_msg`` are py-libp2p internals: both are reached only
through gossip/_tuning.py, whose fingerprint check covers them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["DropCounter", "MembershipGate", "guard_all_handlers", "guard_handler"]

logger = logging.getLogger("gossip.guards")

IsMember = Callable[[str], Awaitable[bool]]
StreamHandler = Callable[[Any], Awaitable[None]]


class DropCounter:
    """Counts of dropped inputs by reason; shared by all guards of one network."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()

    def drop(self, reason: str, peer_id: str, detail: str = "") -> None:
        self.by_reason[reason] += 1
        logger.debug("dropped %s from %s %s", reason, peer_id, detail)


class MembershipGate:
    """Answers "may this peer talk to us?" using the injected check and a small cache."""

    def __init__(
        self,
        is_member: IsMember | None,
        ttl: float,
        drops: DropCounter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._is_member = is_member
        self._ttl = ttl
        self._drops = drops
        self._clock = clock
        self._allowed_until: dict[str, float] = {}
        self.lookups = 0

    async def allowed(self, peer_id: str) -> bool:
        if self._is_member is None:
            return True
        until = self._allowed_until.get(peer_id)
        if until is not None and until > self._clock():
            return True
        self.lookups += 1
        try:
            ok = bool(await self._is_member(peer_id))
        except Exception as exc:  # boundary: an injected callback; logged and counted
            self._drops.drop("membership_check_error", peer_id, type(exc).__name__)
            logger.warning("membership check failed for %s: %s", peer_id, type(exc).__name__)
            return False
        if ok:
            self._allowed_until[peer_id] = self._clock() + self._ttl
        else:
            self._allowed_until.pop(peer_id, None)
        return ok

    def forget(self, peer_id: str) -> None:
        self._allowed_until.pop(peer_id, None)


def _remote_peer(stream: Any) -> str:
    try:
        return str(stream.muxed_conn.peer_id)
    except AttributeError:
        return "?"


async def _reset_quietly(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:  # the stream is already broken; nothing more to do
        logger.debug("reset of a broken stream failed", exc_info=True)


def guard_handler(
    handler: StreamHandler, protocol: str, gate: MembershipGate, drops: DropCounter
) -> StreamHandler:
    """Wrap ``handler``: membership first, then no exception escapes."""
    if getattr(handler, "_medgossip_guarded", False):
        return handler

    async def guarded(stream: Any) -> None:
        peer = _remote_peer(stream)
        if not await gate.allowed(peer):
            drops.drop("not_member", peer, protocol)
            await _reset_quietly(stream)
            return
        try:
            await handler(stream)
        except Exception as exc:  # boundary: network handler; counted and logged
            drops.drop(f"{protocol}:{type(exc).__name__}", peer)
            await _reset_quietly(stream)

    guarded._medgossip_guarded = True  # type: ignore[attr-defined]
    guarded.__name__ = f"guarded_{getattr(handler, '__name__', 'handler')}"
    return guarded


def guard_all_handlers(host: Any, gate: MembershipGate, drops: DropCounter) -> list[str]:
    """Wrap every handler registered on ``host``; return the protocols guarded.

    Rewrites the host's handler table in place (a py-libp2p internal, reached through
    gossip/_tuning.py, which checks it against the pinned library).
    """
    from gossip._tuning import stream_handlers

    handlers = stream_handlers(host)
    guarded: list[str] = []
    for protocol, handler in list(handlers.items()):
        if protocol is None or handler is None:
            continue
        handlers[protocol] = guard_handler(handler, str(protocol), gate, drops)
        guarded.append(str(protocol))
    return guarded
