"""The peer process, as named parts (read them in this order):

    process.py     build a Peer from its config; run it until done or SIGINT/SIGTERM
    loop.py        `Peer`: the round loop (train, commit, merge, checkpoint), sequencing the rest
    preflight.py   start-up checks on chain (registered, funded, same genesis), one line each
    inbox.py       `DeltaInbox`: announced / ready / merged / refused peer deltas, one "wanted" rule
    prefetch.py    `Prefetcher`: verifies announced deltas on chain and fetches them while we train
    watch.py       `ChainWatch`: every delta recorded on chain reaches the inbox and the norm book
    norms.py       `NormBook`: each delta's reference norm, from the chain order and payload norms
    recorder.py    `Recorder`: records queued contributions on chain, then announces them
    budget.py      `PrivacyBudget`: the budget on chain (read by the recorder) and the training gate
    consent.py     `ConsentWatcher`: applies consent withdrawals before the next local step
    chain_view.py  `ChainView`: the peer's (blocking) questions to the ledger
    durable.py     `Durable`: the node's state and the one way to save it
    status.py      `PeerStatus`: what status.json, `node status`, the demo and metrics read

Worker threads (torch, web3, file writes) return values; only trio tasks change state.
Public names load lazily, so `from node.peer.status import PeerStatus` (the CLI's
`node status`) does not import torch or libp2p.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ChainView", "Peer", "PeerStatus", "build_peer", "learner_settings", "run_peer"]

if TYPE_CHECKING:
    from node.peer.chain_view import ChainView
    from node.peer.loop import Peer
    from node.peer.process import build_peer, learner_settings, run_peer
    from node.peer.status import PeerStatus

_LAZY = {
    "ChainView": "node.peer.chain_view",
    "Peer": "node.peer.loop",
    "PeerStatus": "node.peer.status",
    "build_peer": "node.peer.process",
    "learner_settings": "node.peer.process",
    "run_peer": "node.peer.process",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'node.peer' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
