"""status.json is written and read through one typed PeerStatus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.errors import PeerError
from node.peer.status import PeerStatus
from tests.node.peer_status_sample import sample_status


def test_a_status_round_trips_through_its_file(tmp_path: Path) -> None:
    status = sample_status(dropped={"wrong-author": 2}, eval_accuracy=0.75, last_contribution=None)

    status.save(tmp_path)

    assert PeerStatus.load(tmp_path) == status


def test_no_status_file_is_none(tmp_path: Path) -> None:
    assert PeerStatus.load(tmp_path) is None


@pytest.mark.parametrize(
    "content, needle",
    [
        (json.dumps({"peer_id": "x", "round": 1}), "incomplete"),
        ("{not json", "unreadable"),
        (json.dumps([1, 2]), "not a peer status"),
        (json.dumps({**sample_status().to_json(), "last_contribution": {"round": 1}}), "malformed"),
    ],
)
def test_a_partial_or_garbled_status_file_is_a_clear_peer_error(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "status.json").write_text(content)

    with pytest.raises(PeerError, match=needle):
        PeerStatus.load(tmp_path)


def test_node_status_shows_the_backpressure_and_the_known_unmerged_deltas(tmp_path: Path) -> None:
    from tests.cli_helpers import call

    paused = "paused: 8 contributions waiting to be recorded (max_unrecorded 8)"
    sample_status(training=paused, queued_records=8, known_unmerged=17).save(tmp_path)

    table = call("node", "status", "-d", str(tmp_path))
    as_json = json.loads(call("node", "status", "-d", str(tmp_path), "--json").stdout)

    assert table.returncode == 0
    assert "training" in table.stdout and "paused: 8 contributions waiting" in table.stdout
    assert "known, not merged yet" in table.stdout and "17" in table.stdout
    assert as_json["training"] == paused and as_json["known_unmerged"] == 17
    assert PeerStatus.load(tmp_path).paused  # type: ignore[union-attr]
