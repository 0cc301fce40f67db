"""Peer-side helpers on the eth-tester chain: nodes with real keys and peer IDs, a real
encoded payload, and a network stub that only records what the peer announces."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from contracts.ledger import AuditLedger
from gossip import Announcement
from gossip.identity import peer_id_from_secret, peer_id_to_bytes
from node.codec import CodecSpec, DeltaEncoder, EncodedDelta
from node.models import state_hash
from tests.contracts.conftest import Chain


@dataclass(frozen=True)
class Node:
    ledger: AuditLedger
    peer_id: str
    address: str


def real_node(chain: Chain, admin: AuditLedger, sample_cap: int = 1_000) -> Node:
    """A funded node whose peer ID and address come from one key, registered on chain."""
    key = chain.funded_key()
    peer_id = peer_id_from_secret(bytes.fromhex(key[2:]))
    handle = chain.handle(key)
    admin.register_node(handle.account or "", peer_id_to_bytes(peer_id), sample_cap)
    return Node(handle, peer_id, handle.account or "")


def encoded_delta(author: str, round_: int, scale: float = 1.0) -> EncodedDelta:
    base = {"w": torch.zeros(4, 3), "b": torch.zeros(3)}
    new = {"w": torch.full((4, 3), 0.01 * scale), "b": torch.full((3,), -0.02 * scale)}
    encoder = DeltaEncoder(CodecSpec("fp32"), model_id="test-model")
    return encoder.encode(new, base, state_hash(base), author=author, round=round_)


@dataclass
class AnnounceLog:
    """Stands in for GossipNetwork where the test is about the chain, not the wire."""

    announced: list[Announcement] = field(default_factory=list)

    async def announce(self, announcement: Announcement, payload: bytes | None = None) -> None:
        self.announced.append(announcement)
