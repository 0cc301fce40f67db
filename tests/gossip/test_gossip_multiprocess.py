"""Three peers as separate OS processes (+ hosts in the test process), killed with -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from gossip import Announcement, GossipConfig, GossipNetwork
from gossip.identity import generate_secret
from gossip.transfer import keccak256

from .gossip_helpers import collect_announcements, make_payload, wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000


class Proc:
    """One peer_proc.py child; its JSON stdout lines are read in a trio task."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.gossip.peer_proc", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.lines: list[dict] = []
        self.ready: dict = {}

    async def pump(self, task_status: object = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()  # type: ignore[attr-defined]
        stdout = trio.lowlevel.FdStream(os.dup(self.popen.stdout.fileno()))  # type: ignore[union-attr]
        buffer = b""
        async for chunk in stdout:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                record = json.loads(line)
                if "ready" in record:
                    self.ready = record
                self.lines.append(record)

    def announcements_from(self, sender: str, min_round: int = 0) -> int:
        return sum(
            1 for r in self.lines
            if "announcement" in r and r["announcement"]["sender"] == sender
            and r["announcement"]["round"] >= min_round
        )

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)


@contextmanager
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.popen.poll() is None:
                proc.kill9()


async def test_three_processes_announce_transfer_fail_over_and_restart() -> None:
    sizes = [100_000, 10 * MB, 50 * MB]
    async with GossipNetwork(GossipConfig(generate_secret(), "mp")) as hub, \
            trio.open_nursery() as nursery:
        inbox: list = []
        await nursery.start(collect_announcements, hub, inbox)
        boot = ["--network", "mp", "--bootstrap", hub.listen_addrs[0]]
        secrets = [generate_secret() for _ in range(3)]
        with procs() as children:
            children += [
                Proc("--secret", secrets[0].hex(), *boot, *[f"--provide={s}:7" for s in sizes]),
                Proc("--secret", secrets[1].hex(), *boot, f"--provide={50 * MB}:7",
                     "--stall-serving"),
                Proc("--secret", secrets[2].hex(), *boot, "--announce-every", "0.2"),
            ]
            for child in children:
                await nursery.start(child.pump)
            await wait_until(lambda: all(c.ready for c in children), 60, "3 processes ready")
            holder, staller, ticker = children
            ids = [c.ready["peer_id"] for c in children]
            await wait_until(lambda: set(ids) <= set(hub.member_peers()), 30, "mesh")

            # Announcements reach every process and the hub.
            await wait_until(lambda: any(r.sender == ids[2] for r in inbox), 10, "hub hears")
            await wait_until(lambda: holder.announcements_from(ids[2]) > 0, 10, "proc hears")
            payload_hub = make_payload(1000, 1)
            await hub.announce(Announcement(hub.peer_id, 1, keccak256(payload_hub), 1000, "x", {}),
                               payload=payload_hub)
            await wait_until(
                lambda: all(c.announcements_from(hub.peer_id) for c in (holder, staller, ticker)),
                10, "the hub's announcement in every process",
            )

            # 100 KB / 10 MB from one process; 50 MB with the first holder killed mid-transfer.
            for size in sizes[:2]:
                digest = bytes.fromhex(holder.ready["hashes"][str(size)])
                assert keccak256(await hub.fetch(digest, [ids[0]])) == digest
            digest = bytes.fromhex(holder.ready["hashes"][str(50 * MB)])
            hub.mark_misbehaving(ids[0], seconds=60)  # the staller is asked first

            async def kill_when_serving() -> None:
                await wait_until(lambda: any("serving" in r for r in staller.lines), 30,
                                 "the stalled transfer")
                staller.kill9()

            nursery.start_soon(kill_when_serving)
            assert keccak256(await hub.fetch(digest, [ids[1], ids[0]])) == digest
            assert staller.popen.poll() is not None
            assert hub.stats.fetch_attempts_failed >= 1

            # kill -9 the ticker (announcing 5/s) and restart it with the same key.
            await wait_until(lambda: holder.announcements_from(ids[2]) >= 5, 10, "ticks")
            ticker.kill9()
            reborn = Proc("--secret", secrets[2].hex(), *boot, "--announce-every", "0.2",
                          "--round-start", "1000000")
            children.append(reborn)
            await nursery.start(reborn.pump)
            await wait_until(lambda: bool(reborn.ready), 30, "restarted process ready")
            with trio.fail_after(5):
                await wait_until(
                    lambda: any(r.sender == ids[2] and r.round >= 1_000_000 for r in inbox)
                    and holder.announcements_from(ids[2], 1_000_000) > 0,
                    5, "the restarted peer's announcement at every peer",
                )
        nursery.cancel_scope.cancel()
