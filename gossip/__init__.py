"""medgossip's P2P layer: libp2p host, signed announcements, content-addressed delta transfer.

Knows nothing of torch, web3 or ``node``; it moves bytes between members of one network.

Files:
    identity.py   secp256k1 secret <-> peer ID <-> Ethereum address (pure, cheap import)
    errors.py     the exception hierarchy (drawn in its docstring)
    messages.py   Announcement and its compact versioned wire format (no pickle)
    _tuning.py    the only place that reaches into py-libp2p internals (pinned version)
    host.py       builds the Noise-only, Yamux-only libp2p host and GossipSub router
    guards.py     armour for the pubsub stream handler and the membership cache
    transfer.py   /medgossip/delta/1.0.0: serve and fetch payloads by keccak256 hash
    store.py      bounded in-memory LRU of payloads this peer provides
    sampling.py   random live peers for fan-out, excluding recent misbehavers
    network.py    GossipNetwork / GossipConfig: the public API the node uses
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
    from gossip.network import GossipConfig, GossipNetwork, GossipStats

_LAZY = {
    "Announcement": "gossip.messages",
    "ReceivedAnnouncement": "gossip.messages",
    "GossipConfig": "gossip.network",
    "GossipNetwork": "gossip.network",
    "GossipStats": "gossip.network",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'gossip' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
