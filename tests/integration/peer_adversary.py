"""Misbehaving gossip hosts, run as their own OS process by the peer-network tests.

    python -m tests.integration.peer_adversary SPEC.json

SPEC: {"network_id": str, "bootstrap": [multiaddr, ...], "status_file": path,
       "hosts": [{"name": str, "secret": hex, "announce": hex hash, "serve": hex bytes | null}]}

Each host is a real `gossip.GossipNetwork` (Noise, Yamux, GossipSub on the honest peers'
topic) that, once connected to every honest peer ("ready" in the status file) and
told to go (SIGUSR1), re-announces its one delta hash every second with a growing round, so the honest peers
keep seeing it as that host's latest contribution. With "serve" it answers
fetches of that hash with those bytes even when they do not hash to it (a lying holder:
`provide()` refuses that, so the test reaches into the store on purpose). Runs until
SIGTERM/SIGINT; rewrites the status file with its hosts' counters after every announce.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from gossip import Announcement, GossipConfig, GossipNetwork
from gossip.logs import configure_libp2p_logging

CONNECT_DEADLINE = 30.0


async def _host(spec: dict[str, Any], host: dict[str, Any], report: dict[str, Any], go: trio.Event) -> None:
    config = GossipConfig(
        secret=bytes.fromhex(host["secret"]),
        network_id=spec["network_id"],
        bootstrap=list(spec["bootstrap"]),
        is_member=None,
    )
    delta_hash = bytes.fromhex(host["announce"])
    async with GossipNetwork(config) as net:
        if host.get("serve") is not None:
            net._store.put(delta_hash, bytes.fromhex(host["serve"]))  # noqa: SLF001 - a liar on purpose
        await _connected_to(net, spec["bootstrap"], report, host["name"])
        _write_status(Path(spec["status_file"]), report)
        await go.wait()  # SIGUSR1: the test has recorded what the hosts lie about
        round_ = 0
        while True:
            round_ += 1
            try:
                await net.announce(
                    Announcement(
                        peer_id=net.peer_id, round=round_, delta_hash=delta_hash, size=64, codec="fp32",
                        metadata={"samples": "1000"},
                    )
                )
            except Exception as exc:  # noqa: BLE001 - keep announcing; reported in the status file
                report.setdefault(host["name"] + ":errors", []).append(repr(exc)[:200])
            stats = net.stats
            report[host["name"]] = {
                "peer_id": net.peer_id,
                "round": round_,
                "connected": len(net.connected_peers()),
                "published": stats.announcements_published,
                "payloads_served": stats.payloads_served,
                "dropped": dict(stats.dropped),
                "ready": True,
            }
            _write_status(Path(spec["status_file"]), report)
            await trio.sleep(1.0)  # the re-announce cadence (behaviour, not synchronisation)


async def _connected_to(net: GossipNetwork, bootstrap: list[str], report: dict[str, Any], name: str) -> None:
    """Announce only once connected to every honest peer: one that hears the first
    announcement relayed, before it can reach the liar, would count an unreachable
    holder (fetch-failed) instead of the lie the scenario is about. After
    CONNECT_DEADLINE s, announce anyway (and say so in the status file)."""
    wanted = {addr.rsplit("/p2p/", 1)[-1] for addr in bootstrap}
    with trio.move_on_after(CONNECT_DEADLINE):
        while not wanted <= set(net.connected_peers()):
            await trio.sleep(0.1)  # libp2p has no connection event to wait on: poll
    if not wanted <= set(net.connected_peers()):
        report[name + ":errors"] = [f"not connected to every honest peer after {CONNECT_DEADLINE} s"]
    report[name] = {"peer_id": net.peer_id, "ready": True}


def _write_status(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.replace(path)


async def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    report: dict[str, Any] = {}
    go = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
        async with trio.open_nursery() as nursery:
            for host in spec["hosts"]:
                nursery.start_soon(_host, spec, host, report, go)
            async for signum in signals:
                if signum == signal.SIGUSR1:
                    go.set()
                    continue
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    configure_libp2p_logging()
    trio.run(main, sys.argv[1])
