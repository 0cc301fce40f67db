"""The peer's Prometheus endpoint serves what its status says."""

from __future__ import annotations

import socket
import urllib.request

from node.metrics import PeerMetrics
from tests.node.peer_status_sample import sample_status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_endpoint_serves_the_status_figures() -> None:
    metrics = PeerMetrics()
    port = free_port()
    metrics.serve(port)

    metrics.update(sample_status(
        round=7, accuracy=0.93, queued_records=8, dropped={"wrong-author": 3}, known_unmerged=5,
        training="paused: 8 contributions waiting to be recorded (max_unrecorded 8)",
    ))
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    assert "medgossip_round 7.0" in body
    assert "medgossip_accuracy 0.93" in body
    assert "medgossip_queued_records 8.0" in body
    assert "medgossip_known_unmerged 5.0" in body
    assert "medgossip_training_paused 1.0" in body
    assert 'medgossip_dropped{reason="wrong-author"} 3.0' in body
