"""The delay/loss emulator itself (tests/integration/netem.py), on two emulated hosts.

Before a multi-host test leans on "+100 ms and 1%", this proves the emulation gives
what it says: a TCP round trip longer by twice the one-way delay, about the loss asked
for, and nothing left behind once it stops (no rule, no process, the old round trip).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from tests.integration.netem import Impairments, netem
from tests.integration.netns import Host, HostNet, hostnet

__all__ = ["hostnet", "netem"]  # the fixtures, imported so that pytest finds them here

pytestmark = pytest.mark.slow

_ECHO = textwrap.dedent("""
    import socket, sys
    tcp = socket.create_server((sys.argv[1], 7001))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root): never drop for want of room
    udp.bind((sys.argv[1], 7002))
    print("ready", flush=True)
    got = 0
    udp.settimeout(60.0)  # the client connects over TCP first
    try:
        while True:
            udp.recv(64)
            got += 1
            udp.settimeout(2.0)  # then the datagrams come in one burst
    except TimeoutError:
        pass
    print(got, flush=True)
    sys.stdin.read()
""")
_PROBE = textwrap.dedent("""
    import json, socket, sys, time
    address, count = sys.argv[1], int(sys.argv[2])
    rtts = []
    for _ in range(7):
        start = time.monotonic()
        socket.create_connection((address, 7001), timeout=10).close()
        rtts.append(time.monotonic() - start)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        udp.sendto(b"x" * 32, (address, 7002))
        if i % 50 == 49:
            time.sleep(0.005)  # a pace the receiver's buffers take without dropping
    print(json.dumps(rtts))
""")
DATAGRAMS = 3000


def exchange(net: HostNet, server: Host, client: Host) -> tuple[float, int]:
    """Median TCP connect time from `client` to `server`, and how many of DATAGRAMS
    UDP datagrams from `client` reached `server`."""
    echo = net.start(server, [sys.executable, "-c", _ECHO, server.address], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE)
    if echo.stdout is None or echo.stdout.readline() != b"ready\n":
        raise AssertionError(f"echo server in {server.name} did not start (exit {echo.poll()})")
    probe = net.run(client, sys.executable, "-c", _PROBE, server.address, str(DATAGRAMS), timeout=120)
    assert probe.returncode == 0, probe.stderr
    received = int(echo.stdout.readline())
    echo.kill()
    echo.wait(timeout=10)
    return statistics.median(json.loads(probe.stdout)), received


def rules_in(net: HostNet, host: Host) -> list[str]:
    return [line for line in net.run(host, "iptables", "-S").stdout.splitlines() if "NFQUEUE" in line]


def test_emulator_adds_the_delay_and_loss_asked_and_leaves_nothing(
    hostnet: Callable[[int], HostNet], netem: Callable[..., Impairments]
) -> None:
    # Prepare: two hosts; the round trip and loss between them without emulation.
    net = hostnet(2)
    h1, h2 = net.hosts
    base_rtt, base_received = exchange(net, h1, h2)

    # Execute: impair h1 only (so both directions pass h1's emulator), 100 ms and 5%.
    impaired = netem(net, [h1], delay=0.1, loss=0.05)
    assert len(rules_in(net, h1)) == 3  # all it receives; what it sends to h2 and to the bridge
    rtt, received = exchange(net, h1, h2)
    stats = impaired.stop()
    print(f"round trip {base_rtt * 1000:.1f} -> {rtt * 1000:.1f} ms; {DATAGRAMS - received} of {DATAGRAMS} "
          f"datagrams lost; emulator: {stats[h1.name]}")

    # Assert: +200 ms round trip (100 ms each way); about 5% of the datagrams lost (and
    # the emulator counted every packet it dropped); once stopped, nothing is left.
    assert base_received == DATAGRAMS and base_rtt < 0.1, (base_rtt, base_received)
    assert 0.19 <= rtt - base_rtt < 0.6, (base_rtt, rtt)
    assert 0.03 <= 1 - received / DATAGRAMS <= 0.07, received
    assert 0.03 <= stats[h1.name].loss_rate <= 0.07 and stats[h1.name].seen >= DATAGRAMS, stats
    assert rules_in(net, h1) == []
    after_rtt, after_received = exchange(net, h1, h2)
    assert after_received == DATAGRAMS and after_rtt < 0.1, (after_rtt, after_received)
