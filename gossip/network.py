"""GossipNetwork: the small API the node uses.

    async with GossipNetwork(GossipConfig(secret, "net-1", bootstrap=[...],
                                          is_member=check)) as net:
        net.provide(delta_hash, payload)
        await net.announce(Announcement(net.peer_id, round, delta_hash, len(payload),
                                        "int8", {"base": base_hex}))
        async for received in net.announcements():
            payload = await net.fetch(received.delta_hash, from_peers=[received.sender])
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import trio

from gossip.addresses import SelfDialGate
from gossip.announcing import AnnouncementInbox
from gossip.config import GossipConfig, GossipStats
from gossip.errors import (
    AnnouncementError,
    GossipConfigError,
    NetworkNotRunning,
    PeerUnreachable,
)
from gossip.guards import DropCounter, MembershipGate, guard_all_handlers
from gossip.host import build_host, parse_multiaddrs
from gossip.identity import peer_id_from_secret
from gossip.liveness import watch_liveness
from gossip.messages import Announcement, ReceivedAnnouncement, encode_announcement
from gossip.payloads import Payloads
from gossip.reconnect import MAX_RECONNECT_BACKOFF, Redialer
from gossip.sampling import PeerSampler
from gossip.store import PayloadStore
from gossip.transfer import DELTA_PROTOCOL, TransferLimits

__all__ = ["GossipConfig", "GossipNetwork", "GossipStats"]

logger = logging.getLogger("gossip.network")

class GossipNetwork:
    """A running member of one gossip network (use as ``async with``)."""

    def __init__(self, config: GossipConfig) -> None:
        self.config = config
        self.peer_id: str = peer_id_from_secret(config.secret)
        self._drops = DropCounter()
        self._gate = MembershipGate(config.is_member, config.membership_cache_ttl, self._drops)
        self._sampler = PeerSampler(self.peer_id, config.misbehaviour_penalty)
        self._counts: Counter[str] = Counter()
        self._store = PayloadStore(config.max_provided_bytes, config.max_payload)
        self._payloads = Payloads(
            self._store,
            TransferLimits(
                max_payload=config.max_payload,
                request_timeout=config.request_timeout,
                stall_timeout=config.stall_timeout,
                transfer_timeout=config.transfer_timeout,
            ),
            self._sampler,
            self._drops,
            self._counts,
            source=config.payload_source,
            max_transfers_per_peer=config.max_transfers_per_peer,
        )
        self._bootstrap = parse_multiaddrs(list(config.bootstrap))
        self._listen = parse_multiaddrs(list(config.listen))
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._parts: Any = None
        self._inbox: AnnouncementInbox | None = None
        self._redialer: Redialer | None = None

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> GossipNetwork:
        from libp2p.tools.anyio_service import background_trio_service

        from gossip._tuning import wrap_connection_gate

        parts = build_host(
            self.config.secret,
            heartbeat_interval=self.config.heartbeat_interval,
            enable_mdns=self.config.enable_mdns,
            tuned=self.config.tuned_transport,
            announce=list(self.config.announce),
        )
        self._parts = parts
        inbox = self._inbox = AnnouncementInbox(
            self.peer_id, self.config.max_announcement, self.config.announcement_buffer,
            self._gate, self._drops, self._counts, parts.self_addrs.is_self,
        )
        parts.host.set_stream_handler(DELTA_PROTOCOL, self._payloads.serve)
        guard_all_handlers(parts.host, self._gate, self._drops)
        inbox.guard(parts.pubsub)
        wrap_connection_gate(
            parts.host, lambda gate: SelfDialGate(gate, parts.self_addrs.is_self, self._refused_self)
        )
        self._redialer = Redialer(
            parts.host, self.peer_id, self._bootstrap,
            interval=self.config.reconnect_interval,
            forget_after=self.config.forget_lost_after,
            max_backoff=MAX_RECONNECT_BACKOFF,
            on_skipped=lambda reason: self._drops.drop(reason, self.peer_id),
        )
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await stack.enter_async_context(parts.host.run(self._listen))
            await stack.enter_async_context(background_trio_service(parts.pubsub))
            await stack.enter_async_context(background_trio_service(parts.gossipsub))
            await parts.pubsub.wait_until_ready()
            parts.pubsub.set_topic_validator(
                self.config.topic, inbox.validate, is_async_validator=True
            )
            subscription = await parts.pubsub.subscribe(self.config.topic)
            self._nursery = await stack.enter_async_context(trio.open_nursery())
            self._nursery.start_soon(inbox.pump, subscription, parts.host.get_peerstore())
            self._nursery.start_soon(self._redialer.run)
            self._nursery.start_soon(
                watch_liveness, parts.host, self.config.liveness, self._close_dead_peer
            )
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        logger.info("gossip network %s up as %s at %s", self.config.network_id, self.peer_id,
                    " ".join(self.listen_addrs) or "(no advertised address)")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        if self._inbox is not None:
            self._inbox.close()
        if stack is not None:
            await self._close_connections()
            # Exit in this task and outside any new cancel scope: the stack holds
            # nurseries opened in __aenter__.
            await stack.__aexit__(exc_type, exc, tb)

    async def _close_connections(self) -> None:
        """Close every connection so peers see us leave at once.

        Stopping the swarm service only cancels its tasks: the sockets stayed open and
        other peers kept us as connected (and waited out a stream timeout) until they
        noticed.  Shielded, so it also runs when we are leaving because of a cancel.
        """
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await self._parts.host.get_network().close()
            except Exception:  # leaving anyway: cancelling the service is the fallback
                logger.debug("closing the swarm failed", exc_info=True)

    async def _close_dead_peer(self, peer: Any) -> None:
        """Close every connection to a peer that stopped answering pings."""
        self._counts["dead_connections_closed"] += 1
        with trio.move_on_after(5):
            try:
                await self._parts.host.disconnect(peer)
            except Exception:  # closing a dead connection may fail; it is gone either way
                logger.debug("closing connections to %s failed", peer, exc_info=True)

    def _refused_self(self, addr: Any) -> None:
        self._drops.drop("dial_self", self.peer_id, str(addr))

    def _running(self) -> Any:
        if self._stack is None or self._parts is None:
            raise NetworkNotRunning("use GossipNetwork inside 'async with'")
        return self._parts

    # ---------------------------------------------------------------- announcements
    async def announce(self, announcement: Announcement, payload: bytes | None = None) -> None:
        """Publish ``announcement`` (its peer_id must be ours); provide ``payload`` if given.

        The announcement carries our advertised addresses (``listen_addrs``).
        Raises AnnouncementError (AnnouncementTooLarge over max_announcement bytes).
        """
        parts = self._running()
        if announcement.peer_id != self.peer_id:
            raise AnnouncementError("an announcement must carry this host's own peer ID")
        addrs = [a.split("/p2p/")[0] for a in self.listen_addrs]
        data = encode_announcement(announcement, self.config.max_announcement, addrs=addrs)
        if payload is not None:
            self.provide(announcement.delta_hash, payload)
        await parts.pubsub.publish(self.config.topic, data)
        self._counts["announcements_published"] += 1

    async def announcements(self) -> AsyncIterator[ReceivedAnnouncement]:
        """Verified announcements from other members, in arrival order.

        One stream per network, buffered from the moment the network started (up to
        ``announcement_buffer``; beyond, the newest are dropped and counted).  Own
        announcements are not echoed.  Meant for one consumer task; ends when the
        network closes.
        """
        self._running()
        if self._inbox is None:
            return
        async for received in self._inbox.stream():
            yield received

    # ---------------------------------------------------------------- payloads
    def provide(self, delta_hash: bytes, payload: bytes) -> None:
        """Serve ``payload`` under ``delta_hash`` (keccak256 checked); LRU-bounded memory.

        Raises PayloadHashMismatch if the hash does not match, PayloadOverLimit over max_payload.
        """
        self._payloads.provide(delta_hash, payload)

    def has_payload(self, delta_hash: bytes) -> bool:
        return delta_hash in self._store

    async def fetch(
        self,
        delta_hash: bytes,
        from_peers: Sequence[str],
        *,
        provide: bool = True,
        ordered: bool = False,
    ) -> bytes:
        """The payload whose keccak256 is ``delta_hash``, from one of ``from_peers``.

        Holders are tried one at a time in random order (``ordered``: in the given order,
        e.g. the author first), recent misbehavers last, each
        within the per-holder timeouts of the config.  Bytes are returned only once their
        hash matches.  A holder that lies, stalls, truncates or cannot be reached is
        marked misbehaving (excluded from sample_peers for ``misbehaviour_penalty`` s);
        one that answers "not found" or "busy" is not.  With ``provide`` (default) the
        verified payload is served to others from now on (epidemic spread).

        Raises FetchFailed (``.reasons``: peer -> TransferError) when every holder failed.
        """
        parts = self._running()
        return await self._payloads.fetch(
            parts.host, delta_hash, from_peers, provide=provide, ordered=ordered
        )

    # ---------------------------------------------------------------- peers
    @property
    def listen_addrs(self) -> list[str]:
        """The multiaddrs this host advertises, each ending in /p2p/<peer id>.

        Never an unspecified address: the announce addresses if configured, else the
        listen addresses with 0.0.0.0 / :: replaced by the interface addresses.
        """
        parts = self._running()
        addrs = []
        for addr in parts.host.get_addrs():
            text = str(addr)
            if "/p2p/" not in text:
                text = f"{text}/p2p/{self.peer_id}"
            addrs.append(text)
        return addrs

    async def connect(self, multiaddr_text: str, timeout: float = 10.0) -> str:
        """Dial a peer by multiaddr (with /p2p/); return its peer ID.

        Raises PeerUnreachable when the dial or the Noise/Yamux upgrade fails (also for
        an address of this host itself, which is never dialled).
        """
        from libp2p.peer.peerinfo import info_from_p2p_addr

        parts = self._running()
        try:
            info = info_from_p2p_addr(parse_multiaddrs([multiaddr_text])[0])
        except GossipConfigError:
            raise
        except Exception as exc:  # multiaddr without /p2p/
            raise GossipConfigError(f"{multiaddr_text!r} has no /p2p/<peer id>") from exc
        if info.peer_id.to_base58() == self.peer_id:
            raise PeerUnreachable(f"{multiaddr_text} is this peer itself")
        try:
            with trio.fail_after(timeout):
                await parts.host.connect(info)
        except trio.TooSlowError as exc:
            raise PeerUnreachable(f"connect to {multiaddr_text} timed out") from exc
        except Exception as exc:  # swarm errors come in many types
            raise PeerUnreachable(f"connect to {multiaddr_text}: {exc}") from exc
        return info.peer_id.to_base58()

    def connected_peers(self) -> list[str]:
        parts = self._running()
        return [peer.to_base58() for peer in parts.host.get_connected_peers()]

    def member_peers(self) -> list[str]:
        """Connected peers that joined our announcement topic (their streams passed the gate)."""
        parts = self._running()
        subscribed = parts.pubsub.peer_topics.get(self.config.topic, set())
        connected = set(self.connected_peers())
        return sorted(str(p) for p in subscribed if str(p) in connected)

    def sample_peers(self, k: int) -> list[str]:
        """Up to ``k`` random live member peers, excluding self and recent misbehavers."""
        return self._sampler.sample(self.member_peers(), k)

    def mark_misbehaving(self, peer_id: str, seconds: float | None = None) -> None:
        """Let the node report a peer (e.g. a delta that fails to decode)."""
        self._sampler.mark_misbehaving(peer_id, seconds)

    @property
    def stats(self) -> GossipStats:
        store = self._store
        return GossipStats(
            bytes_sent=self._counts["bytes_sent"],
            bytes_received=self._counts["bytes_received"],
            announcements_published=self._counts["announcements_published"],
            announcements_received=self._counts["announcements_received"],
            payloads_served=self._counts["payloads_served"],
            fetches_succeeded=self._counts["fetches_succeeded"],
            fetches_failed=self._counts["fetches_failed"],
            fetch_attempts_failed=self._counts["fetch_attempts_failed"],
            membership_lookups=self._gate.lookups,
            provided_payloads=len(store),
            provided_bytes=store.total_bytes,
            dropped=dict(self._drops.by_reason),
            dead_connections_closed=self._counts["dead_connections_closed"],
        )
