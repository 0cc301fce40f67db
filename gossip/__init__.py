"""medgossip's P2P layer: libp2p host, signed announcements, content-addressed delta transfer.

Knows nothing of torch, web3 or ``node``; it moves bytes between members of one network.

Files:
    identity.py   secp256k1 secret <-> peer ID <-> Ethereum address (pure, cheap import)
    errors.py     the exception hierarchy (drawn in its docstring)
    messages.py   Announcement and its compact versioned wire format (no pickle)
    _tuning.py    the only place that reaches into py-libp2p internals (pinned version)
    host.py       builds the Noise-only, Yamux-only libp2p host and GossipSub router
    addresses.py  what a host advertises (never 0.0.0.0) and which addresses are its own
    guards.py     armour for the pubsub stream handler and the membership cache
    transfer.py   /medgossip/delta/1.0.0: serve and fetch payloads by keccak256 hash
    store.py      bounded in-memory LRU of payloads this peer provides
    payloads.py   provide / serve / fetch glue around store.py and transfer.py
    announcing.py topic validator, pubsub guard and the announcement inbox
    sampling.py   random live peers for fan-out, excluding recent misbehavers
    liveness.py   pings connected peers; closes the connections of peers that stop answering
    reconnect.py  redials bootstrap and lost peers with backoff
    config.py     GossipConfig / GossipStats
    network.py    GossipNetwork: the public API the node uses
    logs.py       one place that gives libp2p's loggers a handler and a quiet level

Public names are importable from ``gossip`` directly; they are loaded lazily so that
``import gossip.identity`` stays cheap (no libp2p import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Announcement",
    "GossipConfig",
    "GossipNetwork",
    "GossipStats",
    "ReceivedAnnouncement",
]

if TYPE_CHECKING:
    from gossip.messages import Announcement, ReceivedAnnouncement
    from gossip.config import GossipConfig, GossipStats
    from gossip.network import GossipNetwork

_LAZY = {
    "Announcement": "gossip.messages",
    "ReceivedAnnouncement": "gossip.messages",
    "GossipConfig": "gossip.config",
    "GossipNetwork": "gossip.network",
    "GossipStats": "gossip.config",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'gossip' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
