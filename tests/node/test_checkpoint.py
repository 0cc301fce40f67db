"""The peer's durable state: node.json journal, tensors, payloads, status."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from node.checkpoint import CheckpointStore, JournalEntry, NodeState
from node.errors import PeerError


def entry(round_: int, status: str = "queued") -> JournalEntry:
    return JournalEntry(
        round=round_, delta_hash=f"0x{round_:064x}", base_hash="0x" + "ab" * 32, sample_count=10,
        data_root="0x" + "cd" * 32, epsilon=0.5, status=status,
    )


def test_state_round_trip_and_queue(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    state = NodeState(round=2, journal=[entry(1, "recorded"), entry(2), entry(3)], merged={"0x01": 2})

    store.save_state(state)
    loaded = store.load_state()
    loaded.mark_recorded(entry(2).delta_hash, "0xtx", 7)

    assert loaded.round == 2 and loaded.merged == {"0x01": 2}
    assert [e.round for e in loaded.queued()] == [3]
    assert loaded.journal[1].tx_hash == "0xtx" and loaded.journal[1].block == 7
    assert loaded.pending_trained_round() == 3  # trained, not merged: resume there
    assert [p.name for p in tmp_path.iterdir()] == ["node.json"]  # no temp files left


def test_tensors_round_trip_with_residual(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    model = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    residual = {"w": torch.full((2, 3), 0.25)}

    store.save_tensors("round", 4, model, residual)
    got_model, got_residual = store.load_tensors("round", 4)
    store.prune(keep_round=5)

    assert torch.equal(got_model["w"], model["w"]) and torch.equal(got_residual["w"], residual["w"])
    assert not list(tmp_path.glob("round-4.safetensors"))


def test_unreadable_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    (tmp_path / "node.json").write_text("{not json")
    (tmp_path / "round-1.safetensors").write_bytes(b"\x80\x04garbage")

    with pytest.raises(PeerError, match="unreadable"):
        store.load_state()
    with pytest.raises(PeerError, match="unreadable"):
        store.load_tensors("round", 1)


def test_fresh_folder_has_empty_state(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "new")

    state = store.load_state()

    assert state.round == 0 and state.journal == []


def test_payloads_are_all_kept_unless_a_window_is_set(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    for i in range(30):
        store.save_payload(f"0x{i:064x}", bytes([i]))
        os.utime(store.payloads / f"0x{i:064x}.bin", (1_000_000 + i, 1_000_000 + i))
    store.prune(keep_round=30)
    assert len(list(store.payloads.glob("*.bin"))) == 30
    store.prune(keep_round=30, keep_payloads=5)
    assert sorted(p.name for p in store.payloads.glob("*.bin")) == [f"0x{i:064x}.bin" for i in range(25, 30)]
    assert store.load_payload(f"0x{29:064x}") == bytes([29])
