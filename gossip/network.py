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
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import trio

from gossip.errors import (
    AnnouncementError,
    FetchFailed,
    GossipConfigError,
    NetworkNotRunning,
    PayloadHashMismatch,
    PeerRefused,
    PeerUnreachable,
    TransferError,
)
from gossip.guards import DropCounter, MembershipGate, guard_all_handlers
from gossip.host import build_host, parse_multiaddrs
from gossip.identity import peer_id_from_secret
from gossip.messages import (
    DEFAULT_MAX_ANNOUNCEMENT,
    Announcement,
    ReceivedAnnouncement,
    decode_announcement,
    decode_announcement_with_addrs,
    encode_announcement,
)
from gossip.sampling import PeerSampler
from gossip.store import PayloadStore
from gossip.transfer import DELTA_PROTOCOL, TransferLimits, fetch_from, keccak256, serve_stream

__all__ = ["GossipConfig", "GossipNetwork", "GossipStats"]

logger = logging.getLogger("gossip.network")

MiB = 1024 * 1024


MAX_RECONNECT_BACKOFF = 30.0
"""longest pause, in seconds, between two dials of an unreachable bootstrap peer."""


@dataclass(frozen=True)
class GossipConfig:
    """Everything a GossipNetwork needs.  Defaults are the production settings."""

    secret: bytes
    network_id: str
    listen: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",)
    bootstrap: Sequence[str] = ()
    is_member: Callable[[str], Awaitable[bool]] | None = None
    """Async membership check (peer ID -> allowed?).  None lets everyone in (tests)."""
    payload_source: Callable[[bytes], bytes | None] | None = None
    """Payloads kept outside memory (e.g. on disk), looked up by hash when a peer asks for
    one the in-memory store does not hold: a peer joining late can fetch the whole
    history.  It is called on the event loop, so it should be quick (a file read)."""
    max_payload: int = 64 * MiB
    max_provided_bytes: int = 512 * MiB
    max_announcement: int = DEFAULT_MAX_ANNOUNCEMENT
    heartbeat_interval: float = 1.0
    enable_mdns: bool = False
    membership_cache_ttl: float = 30.0
    misbehaviour_penalty: float = 60.0
    max_transfers_per_peer: int = 2
    request_timeout: float = 10.0
    stall_timeout: float = 15.0
    transfer_timeout: float = 120.0
    reconnect_interval: float = 2.0
    announcement_buffer: int = 1024
    tuned_transport: bool = True
    """Offer the tuned transport of gossip/_tuning.py to peers that offer it too.

    Negotiated per connection: a tuned host talks standard Yamux to an untuned peer.
    False offers only py-libp2p's standard Noise and Yamux (nothing process-wide)."""

    def __post_init__(self) -> None:
        if not self.network_id or "/" in self.network_id:
            raise GossipConfigError("network_id must be a non-empty string without '/'")
        if isinstance(self.listen, str) or isinstance(self.bootstrap, str):
            raise GossipConfigError("listen and bootstrap are lists of multiaddrs")
        if self.max_payload <= 0 or self.max_provided_bytes < self.max_payload:
            raise GossipConfigError("need 0 < max_payload <= max_provided_bytes")
        if not 256 <= self.max_announcement <= 64 * 1024:
            raise GossipConfigError("max_announcement must be 256 B .. 64 KiB")
        if self.max_transfers_per_peer < 1:
            raise GossipConfigError("max_transfers_per_peer must be >= 1")

    @property
    def topic(self) -> str:
        return f"/medgossip/{self.network_id}/announcements/1"


@dataclass(frozen=True)
class GossipStats:
    """A snapshot of a network's counters."""

    bytes_sent: int
    bytes_received: int
    announcements_published: int
    announcements_received: int
    payloads_served: int
    fetches_succeeded: int
    fetches_failed: int
    fetch_attempts_failed: int
    membership_lookups: int
    provided_payloads: int
    provided_bytes: int
    dropped: dict[str, int] = field(default_factory=dict)


class GossipNetwork:
    """A running member of one gossip network (use as ``async with``)."""

    def __init__(self, config: GossipConfig) -> None:
        self.config = config
        self.peer_id: str = peer_id_from_secret(config.secret)
        self._drops = DropCounter()
        self._gate = MembershipGate(config.is_member, config.membership_cache_ttl, self._drops)
        self._sampler = PeerSampler(self.peer_id, config.misbehaviour_penalty)
        self._store = PayloadStore(config.max_provided_bytes, config.max_payload)
        self._limits = TransferLimits(
            max_payload=config.max_payload,
            request_timeout=config.request_timeout,
            stall_timeout=config.stall_timeout,
            transfer_timeout=config.transfer_timeout,
        )
        self._counts: Counter[str] = Counter()
        self._active_serves: Counter[str] = Counter()
        self._bootstrap = parse_multiaddrs(list(config.bootstrap))
        self._listen = parse_multiaddrs(list(config.listen))
        self._send, self._receive = trio.open_memory_channel[ReceivedAnnouncement](
            config.announcement_buffer
        )
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._parts: Any = None
        self._subscription: Any = None

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> GossipNetwork:
        from libp2p.tools.anyio_service import background_trio_service

        parts = build_host(
            self.config.secret,
            heartbeat_interval=self.config.heartbeat_interval,
            enable_mdns=self.config.enable_mdns,
            tuned=self.config.tuned_transport,
        )
        self._parts = parts
        parts.host.set_stream_handler(DELTA_PROTOCOL, self._serve)
        guard_all_handlers(parts.host, self._gate, self._drops)
        self._guard_pubsub(parts.pubsub)
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await stack.enter_async_context(parts.host.run(self._listen))
            await stack.enter_async_context(background_trio_service(parts.pubsub))
            await stack.enter_async_context(background_trio_service(parts.gossipsub))
            await parts.pubsub.wait_until_ready()
            parts.pubsub.set_topic_validator(
                self.config.topic, self._validate, is_async_validator=True
            )
            self._subscription = await parts.pubsub.subscribe(self.config.topic)
            self._nursery = await stack.enter_async_context(trio.open_nursery())
            self._nursery.start_soon(self._pump_announcements)
            if self._bootstrap:
                self._nursery.start_soon(self._keep_connected)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        logger.info("gossip network %s up as %s", self.config.network_id, self.peer_id)
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
        self._send.close()
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

    def _running(self) -> Any:
        if self._stack is None or self._parts is None:
            raise NetworkNotRunning("use GossipNetwork inside 'async with'")
        return self._parts

    # ---------------------------------------------------------------- guards
    def _guard_pubsub(self, pubsub: Any) -> None:
        """No malformed pubsub message may raise out of push_msg (it would stop Pubsub)."""
        from gossip._tuning import guard_push_msg

        def dropped(forwarder: str, exc: Exception) -> None:
            self._drops.drop(f"pubsub_message:{type(exc).__name__}", forwarder)

        guard_push_msg(pubsub, dropped)

    async def _validate(self, forwarder: Any, msg: Any) -> bool:
        forwarder_id = str(forwarder)
        try:
            ann = decode_announcement(bytes(msg.data), self.config.max_announcement)
            from libp2p.peer.id import ID

            sender = ID(bytes(msg.from_id)).to_base58()
        except AnnouncementError as exc:
            self._drops.drop(f"announcement_{type(exc).__name__}", forwarder_id)
            return False
        except Exception as exc:  # boundary: arbitrary bytes from the network
            self._drops.drop(f"announcement_{type(exc).__name__}", forwarder_id)
            return False
        if ann.peer_id != sender:
            self._drops.drop("announcement_peer_mismatch", forwarder_id)
            return False
        if sender != self.peer_id and not await self._gate.allowed(sender):
            self._drops.drop("announcement_not_member", sender)
            return False
        return True

    # ---------------------------------------------------------------- announcements
    async def announce(self, announcement: Announcement, payload: bytes | None = None) -> None:
        """Publish ``announcement`` (its peer_id must be ours); provide ``payload`` if given.

        Raises AnnouncementError (AnnouncementTooLarge over max_announcement bytes).
        """
        parts = self._running()
        if announcement.peer_id != self.peer_id:
            raise AnnouncementError("an announcement must carry this host's own peer ID")
        data = encode_announcement(
            announcement, self.config.max_announcement, addrs=self._own_addrs()
        )
        if payload is not None:
            self.provide(announcement.delta_hash, payload)
        await parts.pubsub.publish(self.config.topic, data)
        self._counts["announcements_published"] += 1

    async def _pump_announcements(self) -> None:
        while True:
            msg = await self._subscription.get()
            from libp2p.peer.id import ID

            sender = ID(bytes(msg.from_id)).to_base58()
            if sender == self.peer_id:
                continue
            try:
                ann, addrs = decode_announcement_with_addrs(
                    bytes(msg.data), self.config.max_announcement
                )
            except AnnouncementError:  # the validator already refused these
                self._drops.drop("announcement_undecodable", sender)
                continue
            self._remember_addrs(msg.from_id, addrs)
            received = ReceivedAnnouncement(
                announcement=ann, sender=sender, forwarder=sender, received_at=time.time()
            )
            try:
                self._send.send_nowait(received)
                self._counts["announcements_received"] += 1
            except trio.WouldBlock:
                self._drops.drop("announcement_buffer_full", sender)

    def _own_addrs(self) -> list[str]:
        return [a.split("/p2p/")[0] for a in self.listen_addrs]

    def _remember_addrs(self, raw_peer: bytes, addrs: tuple[str, ...]) -> None:
        """Keep the signed sender's listen addresses so fetch() can dial it directly."""
        from libp2p.peer.id import ID

        parsed = []
        for text in addrs:
            try:
                parsed.extend(parse_multiaddrs([text]))
            except GossipConfigError:
                self._drops.drop("announcement_bad_addr", "?")
        if parsed:
            self._parts.host.get_peerstore().add_addrs(ID(bytes(raw_peer)), parsed, 600)

    async def announcements(self) -> AsyncIterator[ReceivedAnnouncement]:
        """Verified announcements from other members, in arrival order.

        One stream per network, buffered from the moment the network started (up to
        ``announcement_buffer``; beyond, the newest are dropped and counted).  Own
        announcements are not echoed.  Meant for one consumer task; ends when the
        network closes.
        """
        self._running()
        async for received in self._receive:
            yield received

    # ---------------------------------------------------------------- payloads
    def provide(self, delta_hash: bytes, payload: bytes) -> None:
        """Serve ``payload`` under ``delta_hash`` (keccak256 checked); LRU-bounded memory.

        Raises PayloadHashMismatch if the hash does not match, PayloadOverLimit over max_payload.
        """
        if keccak256(payload) != delta_hash:
            raise PayloadHashMismatch("delta_hash is not keccak256(payload)")
        self._store.put(delta_hash, payload)

    def has_payload(self, delta_hash: bytes) -> bool:
        return delta_hash in self._store

    def _lookup(self, delta_hash: bytes) -> bytes | None:
        """The payload to serve under ``delta_hash``: memory first, then payload_source."""
        payload = self._store.get(delta_hash)
        if payload is not None or self.config.payload_source is None:
            return payload
        try:
            payload = self.config.payload_source(delta_hash)
        except Exception:  # a broken source must not take the serving task down
            logger.warning("payload_source failed for %s", delta_hash.hex()[:16], exc_info=True)
            return None
        if payload is None or len(payload) > self.config.max_payload:
            return None
        return payload  # not re-hashed here: every fetcher checks the hash anyway

    def _acquire_slot(self, peer: str) -> bool:
        if self._active_serves[peer] >= self.config.max_transfers_per_peer:
            self._drops.drop("serve_busy", peer)
            return False
        self._active_serves[peer] += 1
        return True

    def _release_slot(self, peer: str) -> None:
        self._active_serves[peer] -= 1
        if self._active_serves[peer] <= 0:
            del self._active_serves[peer]

    def _on_served(self, peer: str, size: int) -> None:
        self._counts["payloads_served"] += 1
        self._counts["bytes_sent"] += size

    async def _serve(self, stream: Any) -> None:
        await serve_stream(
            stream,
            self._lookup,
            self._limits,
            self._acquire_slot,
            self._release_slot,
            self._on_served,
        )

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
        held = self._store.get(delta_hash)
        if held is not None:
            return held
        reasons: dict[str, TransferError] = {}
        for peer in self._sampler.shuffle(from_peers, keep_order=ordered):
            try:
                payload = await fetch_from(parts.host, peer, delta_hash, self._limits)
            except TransferError as exc:
                reasons[peer] = exc
                self._counts["fetch_attempts_failed"] += 1
                if not isinstance(exc, PeerRefused):
                    self._sampler.mark_misbehaving(peer)
                logger.info(
                    "fetch %s from %s failed: %s", delta_hash.hex()[:16], peer,
                    type(exc).__name__,
                )
                continue
            self._counts["fetches_succeeded"] += 1
            self._counts["bytes_received"] += len(payload)
            if provide:
                self._store.put(delta_hash, payload)
            return payload
        self._counts["fetches_failed"] += 1
        raise FetchFailed(delta_hash, reasons)

    # ---------------------------------------------------------------- peers
    @property
    def listen_addrs(self) -> list[str]:
        """Dialable multiaddrs of this host, each ending in /p2p/<peer id>."""
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

        Raises PeerUnreachable when the dial or the Noise/Yamux upgrade fails.
        """
        from libp2p.peer.peerinfo import info_from_p2p_addr

        parts = self._running()
        try:
            info = info_from_p2p_addr(parse_multiaddrs([multiaddr_text])[0])
        except GossipConfigError:
            raise
        except Exception as exc:  # multiaddr without /p2p/
            raise GossipConfigError(f"{multiaddr_text!r} has no /p2p/<peer id>") from exc
        try:
            with trio.fail_after(timeout):
                await parts.host.connect(info)
        except trio.TooSlowError as exc:
            raise PeerUnreachable(f"connect to {multiaddr_text} timed out") from exc
        except Exception as exc:  # swarm errors come in many types
            raise PeerUnreachable(f"connect to {multiaddr_text}: {exc}") from exc
        return info.peer_id.to_base58()

    async def _keep_connected(self) -> None:
        """Dial bootstrap peers now and whenever they are gone (restarts, partitions).

        A peer that stays unreachable is retried with a doubling delay, from
        reconnect_interval up to MAX_RECONNECT_BACKOFF (py-libp2p logs every failed dial);
        a peer that comes back usually dials us first anyway.
        """
        from libp2p.peer.peerinfo import info_from_p2p_addr

        infos = []
        for addr in self._bootstrap:
            try:
                infos.append(info_from_p2p_addr(addr))
            except Exception:  # a bootstrap addr without /p2p/: cannot be kept
                logger.warning("bootstrap address %s has no /p2p/ part; ignored", addr)
        base = self.config.reconnect_interval
        delay = {info.peer_id: base for info in infos}
        next_try = {info.peer_id: 0.0 for info in infos}
        while True:
            connected = set(self.connected_peers())
            for info in infos:
                peer = info.peer_id.to_base58()
                if peer in connected or peer == self.peer_id:
                    delay[info.peer_id] = base
                    continue
                if trio.current_time() < next_try[info.peer_id]:
                    continue
                # The swarm refuses to redial a peer for 60 s after a failed dial (its
                # "negative cache"); a bootstrap peer that was down, or not started
                # yet, would stay unreachable that long after it came up.
                self._parts.host.get_network().unblock_peer(info.peer_id)
                try:
                    with trio.fail_after(max(5.0, base)):
                        await self._parts.host.connect(info)
                    logger.info("connected to bootstrap peer %s", peer)
                except Exception as exc:  # unreachable for now; retried later
                    logger.debug("bootstrap %s unreachable: %s: %s", peer, type(exc).__name__, exc)
                    next_try[info.peer_id] = trio.current_time() + delay[info.peer_id]
                    delay[info.peer_id] = min(2 * delay[info.peer_id], max(base, MAX_RECONNECT_BACKOFF))
            await trio.sleep(base)

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
            provided_payloads=len(self._store),
            provided_bytes=self._store.total_bytes,
            dropped=dict(self._drops.by_reason),
        )


