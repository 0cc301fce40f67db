"""A complete PeerStatus for tests, with fields overridable."""

from __future__ import annotations

from typing import Any

from node.peer.status import LastContribution, PeerStatus


def sample_status(**overrides: Any) -> PeerStatus:
    values: dict[str, Any] = dict(
        peer_id="16Uiu2HAm-test", address="0x" + "ab" * 20, pid=1, round=3, rounds_target=10,
        finished=False, stopped=False, peers=2,
        last_contribution=LastContribution(3, "0x" + "cd" * 32, "recorded", "0x" + "ef" * 32),
        queued_records=0, recorder="ok", training="ok", accuracy=0.5, eval_accuracy=None, epsilon_total=0.0, budget=None,
        merged_total=4, known_unmerged=0, clipped_total=0, recorded_total=3, withdrawn_subjects=0, withdrawals_applied=0,
        withdrawals_ignored=0, excluded_images=0,
        dropped={}, gossip_dropped={}, bytes_sent=10, bytes_received=20, train_seconds=1.5,
        wall_seconds=3.0, updated=1.0,
    )
    values.update(overrides)
    return PeerStatus(**values)
