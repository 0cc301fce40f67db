"""Hospitals on separate machines, emulated: each peer in its own network namespace.

First the emulation itself is proved (hosts reach each other over TCP, both partition
kinds cut what they should and nothing more, nothing is left behind even when a test
fails or its process is killed); then three peers set up only through the CLI train,
gossip and record across the bridge, survive a partition of each kind, and a fourth
host reads the whole audit trail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts.ledger import AuditLedger
from node.checkpoint import CheckpointStore
from tests.integration.multihost_harness import (
    BATCH,
    LOCAL_STEPS,
    Hospital,
    Watch,
    medgossip,
    poll,
    set_up_consortium,
    start_peer,
)
from tests.integration.netem import Impairments, describe, netem
from tests.integration.netns import BRIDGE_ADDRESS, Host, HostNet, exclusive, hostnet, leftovers, unavailable

__all__ = ["hostnet", "netem"]  # the fixtures, imported so that pytest finds them here

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

_LISTEN = "import socket,sys; s=socket.create_server((sys.argv[1], int(sys.argv[2]))); print('ready', flush=True); sys.stdin.read()"
_CONNECT = textwrap.dedent("""
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    except OSError as exc:
        print(type(exc).__name__, exc)
    else:
        print("connected")
""")


def connect(net: HostNet, src: Host, address: str, port: int, timeout: float = 2.0) -> str:
    """A TCP connect from inside `src`: "connected", or the error ("TimeoutError ...")."""
    done = net.run(src, sys.executable, "-c", _CONNECT, address, str(port), str(timeout))
    return (done.stdout + done.stderr).strip()


def listen_in(net: HostNet, host: Host, port: int) -> subprocess.Popen[bytes]:
    """A TCP listener inside `host`, ready when this returns."""
    proc = net.start(host, [sys.executable, "-c", _LISTEN, host.address, str(port)],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if proc.stdout is None or proc.stdout.readline() != b"ready\n":
        raise AssertionError(f"listener in {host.name} did not start (exit {proc.poll()})")
    return proc


def test_hosts_reach_each_other_and_both_partitions_cut_and_heal(hostnet: Callable[[int], HostNet]) -> None:
    # Prepare: two hosts, a listener in h1 and one on the bridge (root namespace).
    net = hostnet(2)
    h1, h2 = net.hosts
    listen_in(net, h1, 7001)
    with socket.create_server((BRIDGE_ADDRESS, 0)) as chain:
        chain_port = chain.getsockname()[1]
        assert connect(net, h2, h1.address, 7001) == "connected"
        assert connect(net, h1, BRIDGE_ADDRESS, chain_port) == "connected"

        # A link down cuts h1 off; bringing it up restores it.
        net.link_down(h1)
        assert connect(net, h2, h1.address, 7001).startswith("TimeoutError")
        assert connect(net, h1, BRIDGE_ADDRESS, chain_port).startswith(("TimeoutError", "OSError"))
        net.link_up(h1)
        assert connect(net, h2, h1.address, 7001) == "connected"

        # An iptables DROP between h1 and h2 cuts only them: both still reach the bridge.
        block = net.block(h1, h2)
        assert connect(net, h2, h1.address, 7001).startswith("TimeoutError")
        assert connect(net, h1, BRIDGE_ADDRESS, chain_port) == "connected"
        assert connect(net, h2, BRIDGE_ADDRESS, chain_port) == "connected"
        net.unblock(block)
        assert connect(net, h2, h1.address, 7001) == "connected"

        # Teardown leaves no namespace, link or rule of ours behind (the finalizer's close
        # is idempotent; calling it here lets the test see its effect).
        net.block(h2, h1)
        net.link_down(h2)
        net.close()
    assert leftovers() == []


_INNER = textwrap.dedent("""
    import os, signal, sys
    from tests.integration.netns import hostnet, leftovers

    def _busy(net):
        h1, h2 = net.hosts
        net.block(h1, h2)
        net.link_down(h2)
        net.start(h1, [sys.executable, "-c", "import time; time.sleep(600)"])

    def test_fails(hostnet):
        _busy(hostnet(2))
        raise AssertionError("deliberate failure")

    def test_killed(hostnet):
        _busy(hostnet(2))
        os.kill(os.getpid(), signal.SIGKILL)

    def test_after_crash(hostnet):
        hostnet(1)
        assert sorted(leftovers()) == ["link mg-br0", "link mg-h1-br", "netns mg-h1"], leftovers()
""")


def _inner_pytest(tmp_path: Path, test: str) -> subprocess.CompletedProcess[str]:
    """Run one test of _INNER in a separate pytest process (it takes the netns lock itself)."""
    (tmp_path / "inner_netns_test.py").write_text(_INNER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "inner_netns_test.py", "-k", test],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_nothing_is_left_after_a_failing_test_or_a_killed_run(tmp_path: Path) -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    # A failing test: its finalizers delete everything.
    failed = _inner_pytest(tmp_path, "test_fails")
    assert failed.returncode == 1 and "deliberate failure" in failed.stdout, failed.stdout + failed.stderr
    with exclusive():
        assert leftovers() == []

    # A killed run leaves its namespaces; the next session deletes them before starting.
    killed = _inner_pytest(tmp_path, "test_killed")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    with exclusive():
        assert "netns mg-h2" in leftovers()
    after = _inner_pytest(tmp_path, "test_after_crash")
    assert after.returncode == 0, after.stdout + after.stderr
    with exclusive():
        assert leftovers() == []


# --- three hospitals on three hosts, set up only through the CLI --------------------------

PARTITION_SECONDS = float(os.environ.get("MEDGOSSIP_PARTITION_SECONDS", "20"))
"""How long each partition lasts. The issue measured 30 s; the suite uses 20 s, which is
still longer than the 15 s within which a dead connection must be detected, so the peers
really lose each other (and must redial) rather than ride the partition out on their old
connections. MEDGOSSIP_PARTITION_SECONDS=30 reproduces the issue's runs."""
HEAL_SECONDS = 60.0
"""The issue's bound: every valid delta merged within 60 s of the heal, with no restart."""


def set_caps(admin: AuditLedger, hospitals: list[Hospital], cap: int) -> float:
    """Every hospital's sample cap set to `cap`; the wall-clock time the last one was mined.

    A cap of 1 freezes the ledger: each peer declares up to the cap it read at start, so
    the chain refuses every new record ("over the cap", rejected for good) while the
    peers go on training, merging and serving. With nothing new recorded, "every record
    merged" and "known_unmerged is 0" become exact, observable states. This is the test
    acting as the consortium admin through the binding (fast), not a setup step."""
    for h in hospitals:
        admin.set_sample_cap(h.address, cap)
    return time.time()


def partition_and_heal(net: HostNet, watch: Watch, admin: AuditLedger, kind: str) -> dict[str, object]:
    """Cut hospital 1 off for PARTITION_SECONDS (`kind`: its link down, or iptables DROP
    to the other two hospitals with the chain reachable), heal, and require within
    HEAL_SECONDS of the heal: the cut-off peer's backlog recorded, then (the ledger
    frozen) every record merged by every other peer and every counter at 0.
    Returns what was seen, for the assertions and their messages."""
    hospitals = watch.hospitals
    cut, others = hospitals[0], hospitals[1:]
    peak = {h.name: 0 for h in hospitals}

    def sample() -> None:
        for h in hospitals:
            s = h.status()
            if s is not None:
                peak[h.name] = max(peak[h.name], s.known_unmerged)

    if kind == "link-down":
        net.link_down(cut.host)
    else:
        for other in others:
            net.block(cut.host, other.host)
    end = time.monotonic() + PARTITION_SECONDS
    poll(hospitals, lambda: time.monotonic() >= end, PARTITION_SECONDS + 5, lambda: f"{kind} partition", every=sample)
    peak_during = dict(peak)
    upto = watch.rounds()  # each peer's last round at the heal
    net.heal()
    healed = time.monotonic()
    poll(hospitals, lambda: watch.backlog_recorded(upto), HEAL_SECONDS,
         lambda: f"after the {kind} heal, every contribution up to rounds {upto} recorded", every=sample)
    frozen = set_caps(admin, hospitals, 1)

    def caught_up() -> bool:
        statuses = [h.status() for h in hospitals]
        return not watch.unmerged() and all(
            s is not None and s.updated > frozen + 1.0 and s.known_unmerged == 0 for s in statuses)

    poll(hospitals, caught_up, max(0.0, HEAL_SECONDS - (time.monotonic() - healed)),
         lambda: f"within {HEAL_SECONDS:.0f} s of the {kind} heal, every record merged by every other peer and "
                 f"known_unmerged 0 (peaks {peak}); unmerged (author, round): "
                 f"{ {k: v[:8] for k, v in watch.unmerged().items()} }", every=sample)
    took = time.monotonic() - healed
    set_caps(admin, hospitals, LOCAL_STEPS * BATCH)  # recording resumes
    # Settled counts refusals: the norm bound may refuse a cut-off peer's backlog (trained
    # alone, larger updates) as over-norm. Shown so that a run says how many.
    refused = {h.name: len(h.settled() - h.merged()) for h in hospitals}
    return {"kind": kind, "heal_to_all_merged_s": round(took, 1), "peak_during": peak_during, "peak": peak,
            "refused_total": refused}


def test_three_hospitals_on_three_hosts_converge_and_heal_both_partitions(
    hostnet: Callable[[int], HostNet], tmp_path: Path
) -> None:
    # Prepare: 3 hospital hosts + the admin's host; the chain (anvil) on the bridge address.
    net = hostnet(4)
    c = set_up_consortium(net, tmp_path)
    admin_host, network, hospitals, watch, admin = c.admin_host, c.network, c.hospitals, c.watch, c.admin

    # Execute: every peer on its own host; they find each other through the announced addresses.
    for h in hospitals:
        start_peer(net, h)
    # Partition only once training has settled (round 30): a backlog of first-round
    # deltas would be refused as over-norm by the others, not merged, and prove less.
    poll(hospitals, lambda: min(watch.rounds().values()) >= 30 and watch.merged_from_everyone(), 180,
         lambda: f"every peer at round 30 (rounds {watch.rounds()}) and merging deltas of every other peer")
    for h in hospitals:
        s = h.status()
        assert s is not None and s.address, h.name
        # Listening on 0.0.0.0, each advertises its announce address only (the one the
        # others dialled and fetched every merged delta from).
        assert json.loads((h.checkpoint / "addrs.json").read_text()) == [h.multiaddr], h.name
    seen = [partition_and_heal(net, watch, admin, kind) for kind in ("link-down", "iptables")]
    print(f"partitions of {PARTITION_SECONDS:.0f} s: {seen}")

    # Assert: the counter of known-but-unmerged deltas showed each gap (the cut-off peer
    # saw the others' records it could not fetch); partition_and_heal saw it back at 0.
    link_down, iptables = seen
    assert link_down["peak"][hospitals[0].name] > 0, seen  # type: ignore[index]
    assert all(v > 0 for v in iptables["peak_during"].values()), seen  # type: ignore[union-attr]

    # The auditor's host reads the whole trail: every contribution any peer recorded.
    for h in hospitals:
        if h.process is not None:
            h.process.terminate()
    for h in hospitals:
        if h.process is not None:
            h.process.wait(timeout=30)
    journaled = {(h.address.lower(), e.delta_hash.lower()) for h in hospitals
                 for e in CheckpointStore(h.checkpoint).load_state().journal if e.status == "recorded"}
    trail = json.loads(medgossip(net, admin_host, "ledger", "query", "--json", "--network", network))
    listed = {(c["node"].lower(), c["delta_hash"].lower()) for c in trail["contributions"]}
    assert journaled and journaled <= listed, sorted(journaled - listed)[:5]
    assert {c["node"].lower() for c in trail["contributions"]} == {h.address.lower() for h in hospitals}


# --- delay and loss ------------------------------------------------------------------------

DELAY_SECONDS = 0.05
"""One-way, on every path between a hospital and anyone else (the chain, the other
hospitals): +100 ms round trip, the issue's recipe, under which recording fell to about
1 transaction/s and the unrecorded backlog grew from 0 to 63."""
LOSS = 0.01
MAX_UNRECORDED = 3
"""Small (the default is 8), so that within the test it is the bound, not the chain's
pace, that must hold the backlog."""
MERGED_EACH = 10
"""Deltas of every other peer that each peer must merge over the slow, lossy links."""


def merged_counts(watch: Watch) -> dict[str, dict[str, int]]:
    """Per peer, how many deltas of each other peer it has merged (authors from the chain)."""
    author_of = {"0x" + c.delta_hash.hex(): c.node.lower() for c in watch.records()}
    counts: dict[str, dict[str, int]] = {}
    for h in watch.hospitals:
        mine = {o.name: 0 for o in watch.hospitals if o is not h}
        for delta in h.merged():
            author = author_of.get(delta)
            if author is not None and author != h.address.lower():
                mine[watch.authors[author].name] += 1
        counts[h.name] = mine
    return counts


def test_delay_and_loss_peers_keep_converging_and_the_backlog_stays_within_its_bound(
    hostnet: Callable[[int], HostNet], netem: Callable[..., Impairments], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: three hospitals set up through the CLI as above, each peer bounding its
    # unrecorded contributions at MAX_UNRECORDED, and every path between a hospital and
    # anyone else impaired (+100 ms round trip, 1% loss) before any peer starts.
    net = hostnet(4)
    c = set_up_consortium(net, tmp_path)
    hospitals, watch, admin = c.hospitals, c.watch, c.admin
    impaired = netem(net, [h.host for h in hospitals], delay=DELAY_SECONDS, loss=LOSS)
    monkeypatch.setenv("MEDGOSSIP_MAX_UNRECORDED", str(MAX_UNRECORDED))  # `node start` reads it
    peak = {h.name: 0 for h in hospitals}
    paused: set[str] = set()

    def sample() -> None:
        for h in hospitals:
            s = h.status()
            if s is not None:
                peak[h.name] = max(peak[h.name], s.queued_records)
                if s.paused:
                    paused.add(h.name)

    # Execute: the peers train, record and gossip over those links until each has merged
    # MERGED_EACH deltas of every other peer; then, the ledger frozen, every record on
    # chain must reach every other peer, still over the same links.
    started = time.monotonic()
    for h in hospitals:
        start_peer(net, h)
    poll(hospitals, lambda: all(n >= MERGED_EACH for c in merged_counts(watch).values() for n in c.values()), 120,
         lambda: f"every peer merging {MERGED_EACH} deltas of every other peer under delay and loss "
                 f"(merged {merged_counts(watch)}, peak queued {peak})", every=sample)
    converging = time.monotonic() - started
    frozen = set_caps(admin, hospitals, 1)

    def caught_up() -> bool:
        statuses = [h.status() for h in hospitals]
        return not watch.unmerged() and all(
            s is not None and s.updated > frozen + 1.0 and s.known_unmerged == 0 for s in statuses)

    took = poll(hospitals, caught_up, HEAL_SECONDS,
                lambda: f"under delay and loss, every record merged by every other peer and known_unmerged 0 "
                        f"(unmerged (author, round): { {k: v[:8] for k, v in watch.unmerged().items()} })",
                every=sample)
    emulated = describe(impaired.stop())
    print(f"+{2 * DELAY_SECONDS * 1000:.0f} ms round trip, {LOSS:.0%} loss: {MERGED_EACH} merges of each other "
          f"peer in {converging:.1f} s, all records merged {took:.1f} s after the freeze; peak queued {peak} "
          f"(max_unrecorded {MAX_UNRECORDED}), paused {sorted(paused)}, records {len(watch.records())}; "
          f"emulators {emulated}")

    # Assert: no peer ever had more than MAX_UNRECORDED contributions waiting, and the
    # bound was reached (it was the bound that held the backlog, not a fast chain); the
    # links really lost about 1% of their packets.
    assert all(p <= MAX_UNRECORDED for p in peak.values()), peak
    assert max(peak.values()) == MAX_UNRECORDED and paused, (peak, paused)
    assert 0.005 <= emulated["loss_rate"] <= 0.02, emulated
