"""The pubsub side of a GossipNetwork: guard, validate and hand on announcements.

* ``guard`` wraps ``Pubsub.push_msg`` so no malformed message stops the Pubsub service.
* ``validate`` is the topic validator: an announcement dies here, before GossipSub
  forwards it, unless it decodes, carries its signed sender's peer ID, and that sender
  is a member.
* ``pump`` moves verified announcements from the subscription into a bounded channel
  (the newest are dropped and counted when it is full) and records each sender's
  advertised addresses in the peerstore, so a fetch can dial a holder that is not a
  neighbour.  Addresses that lead back to this host are not recorded (addresses.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from gossip.errors import AnnouncementError, GossipConfigError
from gossip.guards import DropCounter, MembershipGate
from gossip.host import parse_multiaddrs
from gossip.messages import (
    ReceivedAnnouncement,
    decode_announcement,
    decode_announcement_with_addrs,
)

__all__ = ["AnnouncementInbox"]

ADDR_TTL = 600
"""seconds the peerstore keeps an address learnt from an announcement."""


def _sender(msg: Any) -> str:
    from libp2p.peer.id import ID

    return ID(bytes(msg.from_id)).to_base58()


class AnnouncementInbox:
    """Verified announcements of one topic, in arrival order."""

    def __init__(
        self,
        own_peer_id: str,
        max_announcement: int,
        buffer: int,
        gate: MembershipGate,
        drops: DropCounter,
        counts: Counter[str],
        is_self_addr: Callable[[Any], bool],
    ) -> None:
        self._own = own_peer_id
        self._max = max_announcement
        self._gate = gate
        self._drops = drops
        self._counts = counts
        self._is_self_addr = is_self_addr
        self._send, self._receive = trio.open_memory_channel[ReceivedAnnouncement](buffer)

    def guard(self, pubsub: Any) -> None:
        """No malformed pubsub message may raise out of push_msg (it would stop Pubsub)."""
        from gossip._tuning import guard_push_msg

        def dropped(forwarder: str, exc: Exception) -> None:
            self._drops.drop(f"pubsub_message:{type(exc).__name__}", forwarder)

        guard_push_msg(pubsub, dropped)

    async def validate(self, forwarder: Any, msg: Any) -> bool:
        forwarder_id = str(forwarder)
        try:
            ann = decode_announcement(bytes(msg.data), self._max)
            sender = _sender(msg)
        except AnnouncementError as exc:
            self._drops.drop(f"announcement_{type(exc).__name__}", forwarder_id)
            return False
        except Exception as exc:  # boundary: arbitrary bytes from the network
            self._drops.drop(f"announcement_{type(exc).__name__}", forwarder_id)
            return False
        if ann.peer_id != sender:
            self._drops.drop("announcement_peer_mismatch", forwarder_id)
            return False
        if sender != self._own and not await self._gate.allowed(sender):
            self._drops.drop("announcement_not_member", sender)
            return False
        return True

    async def pump(self, subscription: Any, peerstore: Any) -> None:
        while True:
            msg = await subscription.get()
            sender = _sender(msg)
            if sender == self._own:
                continue
            try:
                ann, addrs = decode_announcement_with_addrs(bytes(msg.data), self._max)
            except AnnouncementError:  # the validator already refused these
                self._drops.drop("announcement_undecodable", sender)
                continue
            self._remember_addrs(peerstore, msg.from_id, addrs)
            received = ReceivedAnnouncement(
                announcement=ann, sender=sender, forwarder=sender, received_at=time.time()
            )
            try:
                self._send.send_nowait(received)
                self._counts["announcements_received"] += 1
            except trio.WouldBlock:
                self._drops.drop("announcement_buffer_full", sender)

    def _remember_addrs(self, peerstore: Any, raw_peer: bytes, addrs: tuple[str, ...]) -> None:
        """Keep the signed sender's advertised addresses so a fetch can dial it directly."""
        from libp2p.peer.id import ID

        parsed = []
        for text in addrs:
            try:
                addr = parse_multiaddrs([text])[0]
            except GossipConfigError:
                self._drops.drop("announcement_bad_addr", "?")
                continue
            if self._is_self_addr(addr):
                self._drops.drop("announcement_self_addr", "?")
                continue
            parsed.append(addr)
        if parsed:
            peerstore.add_addrs(ID(bytes(raw_peer)), parsed, ADDR_TTL)

    async def stream(self) -> AsyncIterator[ReceivedAnnouncement]:
        async for received in self._receive:
            yield received

    def close(self) -> None:
        self._send.close()
