"""Delay and loss for emulated hosts, in user space (this kernel has no `sch_netem`).

An emulator process runs inside each impaired host's namespace, bound to a netfilter
queue (PyPI `netfilterqueue`). iptables rules in that namespace send it every packet the
host receives (but loopback), and every packet it sends to an address that is not
impaired itself (the bridge address, where the chain listens, and hosts left unimpaired).
So each packet between an impaired host and anyone on the bridge passes exactly one
emulator: the one-way delay of every such path is `delay`, and its loss `loss`. The
emulator drops each packet with probability `loss` (a seeded RNG) and accepts the others
`delay` seconds after they arrived, in arrival order (FIFO: a constant delay keeps TCP's
order, as a long cable does).

Packets are held at their receiver wherever it is impaired, not at their sender: a packet
held in the sender's OUTPUT hook still counts against its socket, and TCP Small Queues
then allow only a couple of packets in flight (measured here: 66 KiB/s at +100 ms and no
loss, held at the sender; the queue at the receiver lets TCP grow its window as a slow
cable does). Only traffic to an unimpaired address (the chain's small JSON-RPC calls) is
held at its sender.

    +100 ms round trip, 1% loss, as the issue measured:  delay=0.05, loss=0.01

`Impairments` starts emulators and undoes them: rules first (no packet is queued to a
stopped emulator, which would black-hole it), then the processes, which release what
they hold and report what they did (`EmulatorStats`). The `netem` fixture closes it
after the test, also when the test fails; the processes run through `HostNet.start`,
and the rules live in our namespaces, so `HostNet.close()` undoes both even after a
crash. Without root the `hostnet` fixture has already skipped; a missing
`netfilterqueue` or NFQUEUE target fails the test that asks for delay (`make install`
installs both as root), as a missing iptables does.

Run as `python -m tests.integration.netem --queue N --delay S --loss P`, it is the
emulator itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.integration.netns import BRIDGE_ADDRESS, RULE_TAG, Host, HostNet, HostNetError

QUEUE_PACKETS = 65536
"""How many packets the kernel queues for the emulator before dropping (at 200 ms and a
full TCP window several thousand packets are held at once; none may be lost to this)."""
SOCKET_BYTES = 32 * 1024 * 1024
"""The netlink receive buffer: an overflow there would drop packets we did not choose to."""
READY = "ready"
_REPO = Path(__file__).resolve().parents[2]
_tags = itertools.count(1)


@dataclass(frozen=True)
class EmulatorStats:
    """What one emulator did, reported when it stops."""

    seen: int
    dropped: int
    accepted: int
    max_held: int
    """the most packets held at once (delayed, not yet accepted)."""

    @property
    def loss_rate(self) -> float:
        return self.dropped / self.seen if self.seen else 0.0


# --- the emulator process -------------------------------------------------------------------


def emulate(queue: int, delay: float, loss: float, seed: int, stop: Callable[[], bool]) -> EmulatorStats:
    """Serve netfilter queue `queue` until `stop()`: drop with probability `loss`, accept
    the rest `delay` seconds after arrival in arrival order. On stop, accept what is held."""
    from netfilterqueue import COPY_META, NetfilterQueue, Packet

    rng = random.Random(seed)
    held: deque[tuple[float, Packet]] = deque()
    seen = dropped = accepted = max_held = 0

    def arrive(packet: Packet) -> None:
        nonlocal seen, dropped, max_held
        seen += 1
        if rng.random() < loss:
            packet.drop()
            dropped += 1
            return
        held.append((time.monotonic() + delay, packet))
        max_held = max(max_held, len(held))

    nfq = NetfilterQueue()
    nfq.bind(queue, arrive, max_len=QUEUE_PACKETS, mode=COPY_META, sock_len=SOCKET_BYTES)
    try:
        fd = nfq.get_fd()
        print(READY, flush=True)
        while not stop():
            now = time.monotonic()
            while held and held[0][0] <= now:
                held.popleft()[1].accept()
                accepted += 1
            wait = 0.1 if not held else max(0.0, held[0][0] - now)
            readable, _, _ = select.select([fd], [], [], min(wait, 0.1))
            if readable:
                nfq.run(block=False)
        while held:  # the rules are gone: release what we hold rather than lose it
            held.popleft()[1].accept()
            accepted += 1
    finally:
        nfq.unbind()
    return EmulatorStats(seen=seen, dropped=dropped, accepted=accepted, max_held=max_held)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="delay and drop the packets of one netfilter queue")
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay", type=float, required=True, help="seconds added to each packet")
    parser.add_argument("--loss", type=float, required=True, help="probability of dropping a packet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    stats = emulate(args.queue, args.delay, args.loss, args.seed, lambda: stopping)
    print(json.dumps(asdict(stats)), flush=True)


# --- starting and undoing emulators (tests and bench) ---------------------------------------


@dataclass(frozen=True)
class Emulator:
    """One host's emulator process and the rules that feed it."""

    host: Host
    process: subprocess.Popen[bytes]
    rules: tuple[tuple[str, ...], ...]


class Impairments:
    """Delay and loss on some hosts of a HostNet; `close()` undoes all of it."""

    def __init__(self, net: HostNet) -> None:
        self.net = net
        self._emulators: list[Emulator] = []
        self.stats: dict[str, EmulatorStats] = {}
        """each stopped emulator's figures, by host name."""

    @property
    def active(self) -> bool:
        return bool(self._emulators)

    def start(self, hosts: Sequence[Host], delay: float, loss: float, seed: int = 0) -> None:
        """Impair `hosts` (none may be impaired already): every packet between one of
        them and anyone on the bridge is delayed `delay` s and lost with probability `loss`."""
        if self._emulators:
            raise HostNetError("hosts are impaired already: stop() first")
        impaired = {h.address for h in hosts}
        unimpaired = [BRIDGE_ADDRESS, *(h.address for h in self.net.hosts if h.address not in impaired)]
        for host in hosts:
            self._start_one(host, unimpaired, delay, loss, seed + host.index)

    def _start_one(self, host: Host, unimpaired: list[str], delay: float, loss: float, seed: int) -> None:
        queue = host.index
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")])}
        process = self.net.start(
            host, [sys.executable, "-m", "tests.integration.netem", "--queue", str(queue), "--delay", str(delay),
                   "--loss", str(loss), "--seed", str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=_REPO)
        line = process.stdout.readline().decode().strip() if process.stdout is not None else ""
        if line != READY:
            process.kill()
            _, err = process.communicate(timeout=10)
            raise HostNetError(f"the delay/loss emulator in {host.name} did not start "
                               f"(`make install` installs netfilterqueue as root): {err.decode().strip()[-800:]}")
        tag = f"{RULE_TAG}{os.getpid()}-netem-{next(_tags)}"
        target = ("-j", "NFQUEUE", "--queue-num", str(queue), "-m", "comment", "--comment", tag)
        rules = (("INPUT", "!", "-i", "lo", *target),
                 *(("OUTPUT", "-d", address, *target) for address in unimpaired))
        emulator = Emulator(host, process, rules)
        self._emulators.append(emulator)  # before adding: half-added rules are still removed
        for rule in rules:
            done = self.net.run(host, "iptables", "-A", *rule)
            if done.returncode != 0:
                raise HostNetError(f"iptables -A {' '.join(rule)} in {host.name}: {done.stderr.strip()}")

    def stop(self) -> dict[str, EmulatorStats]:
        """Remove every rule, then stop every emulator; their figures, by host name.
        An emulator that died while it was needed is an error (its host was cut off)."""
        emulators, self._emulators = self._emulators, []
        for e in emulators:
            for rule in e.rules:
                self.net.run(e.host, "iptables", "-D", *rule)
        died: list[str] = []
        stats: dict[str, EmulatorStats] = {}
        for e in emulators:
            if e.process.poll() is None:
                e.process.terminate()
            else:
                died.append(f"{e.host.name} (exit {e.process.returncode})")
            try:
                out, err = e.process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                e.process.kill()
                out, err = e.process.communicate(timeout=10)
            last = out.decode().strip().splitlines()[-1:] if out else []
            try:
                stats[e.host.name] = EmulatorStats(**json.loads(last[0]))
            except (IndexError, json.JSONDecodeError, TypeError):
                died.append(f"{e.host.name}: no figures ({err.decode().strip()[-400:]})")
        self.stats.update(stats)
        if died:
            raise HostNetError(f"delay/loss emulators failed: {', '.join(died)}")
        return stats

    def close(self) -> None:
        """Undo everything (idempotent); errors are for `stop()` callers, not teardown."""
        try:
            self.stop()
        except HostNetError:
            pass


@pytest.fixture
def netem(request: pytest.FixtureRequest, hostnet: Callable[[int], HostNet]) -> Iterator[Callable[..., Impairments]]:
    """A factory: `netem(net, hosts, delay=, loss=)` impairs `hosts` of `net` (from the
    `hostnet` fixture) until the test ends, also when it fails (before the hosts go:
    this fixture depends on `hostnet`). Returns the Impairments, whose `stop()` gives
    each emulator's figures."""
    made: list[Impairments] = []

    def make(net: HostNet, hosts: Sequence[Host], *, delay: float, loss: float, seed: int = 0) -> Impairments:
        impairments = Impairments(net)
        made.append(impairments)
        request.addfinalizer(impairments.close)  # before starting: a failed start is undone
        impairments.start(hosts, delay, loss, seed)
        return impairments

    yield make


def describe(stats: dict[str, EmulatorStats]) -> dict[str, Any]:
    """Totals of some emulators' figures (for reports)."""
    seen = sum(s.seen for s in stats.values())
    dropped = sum(s.dropped for s in stats.values())
    return {"packets": seen, "dropped": dropped, "loss_rate": round(dropped / seen, 4) if seen else 0.0,
            "max_held": max((s.max_held for s in stats.values()), default=0)}


if __name__ == "__main__":
    main()
