"""GossipConfig and GossipStats: what a GossipNetwork is given, and what it counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gossip.errors import GossipConfigError
from gossip.liveness import LivenessSettings
from gossip.messages import DEFAULT_MAX_ANNOUNCEMENT

__all__ = ["GossipConfig", "GossipStats"]

MiB = 1024 * 1024


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
    """seconds between two passes of the reconnect loop (and its first backoff step)."""
    forget_lost_after: float = 600.0
    """a lost (non-bootstrap) peer is redialled with backoff for this long, then forgotten."""
    announce: Sequence[str] = ()
    """Multiaddrs to advertise instead of the listen addresses (e.g. the public address
    of a host listening on 0.0.0.0).  Empty: the listen addresses, with an unspecified
    IP replaced by the interface addresses."""
    ping_interval: float = 3.0
    ping_timeout: float = 4.0
    ping_misses: int = 2
    """A connected peer is pinged every ping_interval s; after ping_misses pings in a row
    unanswered within ping_timeout s its connections are closed (liveness.py)."""
    announcement_buffer: int = 1024
    tuned_transport: bool = True
    """Offer the tuned transport of gossip/_tuning.py to peers that offer it too.

    Negotiated per connection: a tuned host talks standard Yamux to an untuned peer.
    False offers only py-libp2p's standard Noise and Yamux (nothing process-wide)."""

    def __post_init__(self) -> None:
        if not self.network_id or "/" in self.network_id:
            raise GossipConfigError("network_id must be a non-empty string without '/'")
        if any(isinstance(v, str) for v in (self.listen, self.bootstrap, self.announce)):
            raise GossipConfigError("listen, bootstrap and announce are lists of multiaddrs")
        if self.ping_interval <= 0 or self.ping_timeout <= 0 or self.ping_misses < 1:
            raise GossipConfigError("need ping_interval > 0, ping_timeout > 0, ping_misses >= 1")
        if self.max_payload <= 0 or self.max_provided_bytes < self.max_payload:
            raise GossipConfigError("need 0 < max_payload <= max_provided_bytes")
        if not 256 <= self.max_announcement <= 64 * 1024:
            raise GossipConfigError("max_announcement must be 256 B .. 64 KiB")
        if self.max_transfers_per_peer < 1:
            raise GossipConfigError("max_transfers_per_peer must be >= 1")

    @property
    def topic(self) -> str:
        return f"/medgossip/{self.network_id}/announcements/1"

    @property
    def liveness(self) -> LivenessSettings:
        return LivenessSettings(self.ping_interval, self.ping_timeout, self.ping_misses)


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
    dead_connections_closed: int = 0
    """peers whose connections were closed because they stopped answering pings."""
