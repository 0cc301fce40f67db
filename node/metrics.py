"""Prometheus metrics of a peer (optional: `metrics_port` in the config).

The peer's `PeerStatus` is the single source: `update` copies it into gauges, so the
metrics and `medgossip node status` never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, start_http_server

if TYPE_CHECKING:
    from node.peer.status import PeerStatus

_GAUGES = {
    "round": "last completed round",
    "peers": "connected peers",
    "queued_records": "contributions waiting for the chain",
    "accuracy": "accuracy on the local held-out split",
    "epsilon_total": "DP epsilon spent over the node's lifetime",
    "merged_total": "peer deltas merged since start",
    "known_unmerged": "valid records on chain by other nodes, neither merged nor refused yet",
    "recorded_total": "contributions recorded since start",
    "withdrawals_applied": "consent withdrawals applied since start",
    "bytes_sent": "bytes sent on the network",
    "bytes_received": "bytes received from the network",
    "train_seconds": "seconds spent in local training since start",
    "wall_seconds": "seconds since start",
}


class PeerMetrics:
    """Gauges on a registry of their own (several peers may share a process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauges = {
            name: Gauge(f"medgossip_{name}", doc, registry=self.registry) for name, doc in _GAUGES.items()
        }
        self.paused = Gauge(
            "medgossip_training_paused", "1 while backpressure pauses training (max_unrecorded reached)",
            registry=self.registry,
        )
        self.dropped = Gauge(
            "medgossip_dropped", "peer deltas dropped, by reason", ["reason"], registry=self.registry
        )

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, status: PeerStatus) -> None:
        for name, gauge in self.gauges.items():
            value = getattr(status, name)
            if isinstance(value, (int, float)):
                gauge.set(value)
        self.paused.set(1 if status.paused else 0)
        for reason, count in status.dropped.items():
            self.dropped.labels(reason=reason).set(count)
