"""The fetch side's payload reader: exact length, hash of what was read, clear failures."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from gossip.errors import TransferTimeout, TruncatedTransfer
from gossip.transfer import _receive_hashed, keccak256


class _Stream:
    """Hands out ``data`` in random pieces; ``stall_after`` bytes, then hangs."""

    def __init__(self, data: bytes, seed: int, stall_after: int | None = None) -> None:
        self.data, self.rng, self.stall_after, self.given = data, random.Random(seed), stall_after, 0

    async def read(self, n: int) -> bytes:
        if self.stall_after is not None and self.given >= self.stall_after:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        size = min(n, self.rng.choice([1, 100, 65_536, 1 << 20, 5 << 20]))
        if self.stall_after is not None:
            size = min(size, self.stall_after - self.given)
        out = self.data[self.given : self.given + size]
        self.given += len(out)
        return out


@pytest.mark.parametrize("size", [0, 1, 1_000_003, 9 << 20])
async def test_reads_exactly_the_length_and_hashes_it(size: int) -> None:
    data = random.Random(size).randbytes(size) + b"trailing bytes are not read"
    payload, digest = await _receive_hashed(_Stream(data, size), size, stall_timeout=5)
    assert payload == data[:size]
    assert digest == keccak256(data[:size])


async def test_a_stream_that_ends_early_is_a_truncated_transfer() -> None:
    with pytest.raises(TruncatedTransfer, match="after 3000000 of 4000000 bytes"):
        await _receive_hashed(_Stream(bytes(3_000_000), 1), 4_000_000, stall_timeout=5)


async def test_a_stream_that_stalls_times_out(autojump_clock: trio.testing.MockClock) -> None:
    """The production stall timeout (15 s) on trio's mock clock: instant, and exact."""
    start = trio.current_time()
    with trio.fail_after(60):  # a reader that never gives up fails here, not by hanging
        with pytest.raises(TransferTimeout, match="stalled after 5 of 10 bytes"):
            await _receive_hashed(_Stream(bytes(10), 2, stall_after=5), 10, stall_timeout=15)
    assert trio.current_time() - start == pytest.approx(15)
