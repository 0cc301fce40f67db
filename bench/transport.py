"""Transport benchmark: our delta protocol vs py-libp2p defaults vs a plain TCP floor.

Each case runs between its own two OS processes (server + client); the libp2p tuning of
gossip/_tuning.py is negotiated per connection and applies only to case (1).  The three cases
take turns, one transfer each, so a busy moment on the machine does not fall on one
case only; each figure is the median of ``--reps`` transfers after one warm-up:

  (1) ours      GossipNetwork.provide() / fetch() exactly as the node uses them
  (2) defaults  py-libp2p new_host() with its defaults (Noise, Yamux 64 KiB frames),
                length-prefixed payload on one stream, receiver hashes as it reads
  (3) tcp       plain trio TCP socket, length prefix, receiver hashes as it reads

plus announcement latency from one publisher to all of 16 peers (4 processes x 4 hosts)
and resident memory per host.  Prints a table, writes bench/results/transport.json.

    python bench/transport.py [--sizes 1 10 50] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MiB = 1024 * 1024
PROTO = "/bench/blob/1.0.0"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def say(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def payload_of(size: int) -> bytes:
    import hashlib

    return hashlib.shake_256(b"bench").digest(size)


async def read_line() -> str:
    return (await trio.to_thread.run_sync(sys.stdin.readline)).strip()


# ------------------------------------------------------------------ servers
async def serve(mode: str, sizes: list[int]) -> None:
    from gossip.transfer import keccak256

    payloads = {size: payload_of(size) for size in sizes}
    if mode == "tcp":
        async def handler(conn: trio.SocketStream) -> None:
            async with conn:
                size = struct.unpack(">Q", await conn.receive_some(8))[0]
                data = payloads[size]
                await conn.send_all(struct.pack(">Q", len(data)) + data)

        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, handler, listeners)
            say({"addr": f"127.0.0.1:{port}", "rss_mib": rss_mib()})
            await read_line()
            nursery.cancel_scope.cancel()
        return
    if mode == "ours":
        from gossip import GossipConfig, GossipNetwork
        from gossip.identity import generate_secret

        async with GossipNetwork(GossipConfig(generate_secret(), "bench")) as net:
            hashes = {}
            for size, data in payloads.items():
                digest = keccak256(data)
                net.provide(digest, data)
                hashes[size] = digest.hex()
            say({"addr": net.listen_addrs[0], "hashes": hashes, "rss_mib": rss_mib()})
            await read_line()
        return
    # defaults
    import libp2p
    import multiaddr

    host = libp2p.new_host()

    async def blob(stream: object) -> None:
        size = struct.unpack(">Q", await stream.read(8))[0]  # type: ignore[attr-defined]
        data = payloads[size]
        await stream.write(struct.pack(">Q", len(data)) + data)  # type: ignore[attr-defined]
        await stream.close()  # type: ignore[attr-defined]

    host.set_stream_handler(PROTO, blob)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        addr = f"{host.get_addrs()[0]}"
        if "/p2p/" not in addr:
            addr += f"/p2p/{host.get_id()}"
        say({"addr": addr, "rss_mib": rss_mib()})
        await read_line()


# ------------------------------------------------------------------ clients
async def client(mode: str, addr: str, hashes: dict) -> None:
    """Connect once, then for each size read from stdin, transfer it once and print seconds.

    The orchestrator drives all three clients in turn, one transfer at a time, so the
    three modes see the same machine (a slow minute would otherwise hit one mode only).
    """
    from eth_hash.auto import keccak

    async def receive_hashed(read: object, length: int, got: bytes) -> None:
        hasher = keccak.new(b"")
        hasher.update(got)
        received = len(got)
        while received < length:
            chunk = await read(min(4 * MiB, length - received))  # type: ignore[operator]
            if not chunk:
                raise RuntimeError("short read")
            hasher.update(chunk)
            received += len(chunk)
        hasher.digest()

    async def read_prefix(read: object) -> tuple[int, bytes]:
        buf = b""
        while len(buf) < 8:
            chunk = await read(8 - len(buf))  # type: ignore[operator]
            if not chunk:
                raise RuntimeError("short read")
            buf += chunk
        return struct.unpack(">Q", buf[:8])[0], buf[8:]

    async def serve_requests(transfer: object) -> None:
        say({"ready": True, "rss_mib": rss_mib()})
        while line := await read_line():
            start = time.perf_counter()
            await transfer(int(line))  # type: ignore[operator]
            say({"seconds": time.perf_counter() - start, "rss_mib": rss_mib()})

    if mode == "tcp":
        host, port = addr.split(":")

        async def tcp_transfer(size: int) -> None:
            conn = await trio.open_tcp_stream(host, int(port))
            await conn.send_all(struct.pack(">Q", size))
            length, rest = await read_prefix(conn.receive_some)
            await receive_hashed(conn.receive_some, length, rest)
            await conn.aclose()

        await serve_requests(tcp_transfer)
        return
    if mode == "ours":
        from gossip import GossipConfig, GossipNetwork
        from gossip.identity import generate_secret

        async with GossipNetwork(GossipConfig(generate_secret(), "bench")) as net:
            server = await net.connect(addr)

            async def ours_transfer(size: int) -> None:
                await net.fetch(bytes.fromhex(hashes[str(size)]), [server], provide=False)

            await serve_requests(ours_transfer)
        return
    import libp2p
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    host = libp2p.new_host()
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        await host.connect(info)

        async def default_transfer(size: int) -> None:
            stream = await host.new_stream(info.peer_id, [PROTO])
            await stream.write(struct.pack(">Q", size))
            length, rest = await read_prefix(stream.read)
            await receive_hashed(stream.read, length, rest)
            await stream.close()

        await serve_requests(default_transfer)


# ------------------------------------------------------------------ announcement latency
async def latency_group(count: int, boot: str, publish: int) -> None:
    """Run ``count`` hosts; the first one publishes ``publish`` announcements if > 0."""
    from contextlib import AsyncExitStack

    from gossip import Announcement, GossipConfig, GossipNetwork
    from gossip.identity import generate_secret

    async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
        nets = []
        for _ in range(count):
            config = GossipConfig(generate_secret(), "lat", bootstrap=[boot] if boot else [])
            nets.append(await stack.enter_async_context(GossipNetwork(config)))
            if not boot:
                boot = nets[0].listen_addrs[0]
        received: dict[int, list[float]] = {}

        async def listen(net: GossipNetwork) -> None:
            async for r in net.announcements():
                received.setdefault(r.round, []).append(time.time())

        for net in nets:
            nursery.start_soon(listen, net)
        say({"ready": boot, "rss_mib_per_host": rss_mib() / count})
        await read_line()  # "go"
        if publish:
            sent = {}
            for round_ in range(publish):
                sent[round_] = time.time()
                await nets[0].announce(Announcement(nets[0].peer_id, round_, bytes(32), 0, "x", {}))
                await trio.sleep(0.25)
            await trio.sleep(2)
            say({"sent": sent, "received": received})
        else:
            await read_line()  # "report"
            say({"received": received})
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ orchestration
def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


MODES = ("ours", "defaults", "tcp")


def measure(sizes: list[int], reps: int) -> dict:
    """Median MiB/s per mode and size; the modes take turns, one transfer each."""
    servers, clients, infos = {}, {}, {}
    for mode in MODES:
        servers[mode] = spawn("--role", "server", "--mode", mode, "--bytes", *map(str, sizes))
        infos[mode] = json.loads(servers[mode].stdout.readline())
        clients[mode] = spawn("--role", "client", "--mode", mode, "--addr", infos[mode]["addr"],
                              "--hashes", json.dumps(infos[mode].get("hashes", {})))
        json.loads(clients[mode].stdout.readline())  # connected

    def transfer(mode: str, size: int) -> dict:
        clients[mode].stdin.write(f"{size}\n")
        clients[mode].stdin.flush()
        return json.loads(clients[mode].stdout.readline())

    seconds: dict[str, dict[int, list[float]]] = {m: {s: [] for s in sizes} for m in MODES}
    for size in sizes:  # one warm-up transfer per mode and size, not counted
        for mode in MODES:
            transfer(mode, size)
    for _ in range(reps):
        for size in sizes:
            for mode in MODES:
                seconds[mode][size].append(transfer(mode, size)["seconds"])
    last = {mode: transfer(mode, sizes[-1]) for mode in MODES}
    for proc in [*clients.values(), *servers.values()]:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
    return {
        mode: {
            "mib_per_s": {s: statistics.median(s / MiB / t for t in seconds[mode][s]) for s in sizes},
            "server_rss_mib": infos[mode]["rss_mib"],
            "client_rss_mib": last[mode]["rss_mib"],
        }
        for mode in MODES
    }


def latency(peers: int = 16, groups: int = 4, announcements: int = 20) -> dict:
    per = peers // groups
    first = spawn("--role", "latency", "--count", str(per), "--publish", str(announcements))
    ready = json.loads(first.stdout.readline())
    others = [spawn("--role", "latency", "--count", str(per), "--boot", ready["ready"])
              for _ in range(groups - 1)]
    rss = [ready["rss_mib_per_host"]] + [json.loads(p.stdout.readline())["rss_mib_per_host"]
                                         for p in others]
    time.sleep(8)  # let the 16-peer mesh form (heartbeat 1 s)
    first.stdin.write("go\n")
    first.stdin.flush()
    result = json.loads(first.stdout.readline())
    received = {int(k): list(v) for k, v in result["received"].items()}
    for proc in others:
        proc.stdin.write("go\nreport\n")
        proc.stdin.flush()
        for k, v in json.loads(proc.stdout.readline())["received"].items():
            received.setdefault(int(k), []).extend(v)
    for proc in [first, *others]:
        proc.kill()
    lat = []
    complete = 0
    for round_, sent in result["sent"].items():
        times = received.get(int(round_), [])
        if len(times) >= peers - 1:
            complete += 1
            lat.append((max(times) - sent) * 1000)
    lat.sort()
    return {
        "peers": peers, "announcements": announcements, "reached_all": complete,
        "p50_ms": statistics.median(lat) if lat else None,
        "p95_ms": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None,
        "rss_mib_per_host_4_per_process": statistics.mean(rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", default="main")
    parser.add_argument("--mode", default="")
    parser.add_argument("--addr", default="")
    parser.add_argument("--hashes", default="{}")
    parser.add_argument("--bytes", nargs="*", type=int, default=[])
    parser.add_argument("--sizes", nargs="*", type=int, default=[1, 10, 50])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--boot", default="")
    parser.add_argument("--publish", type=int, default=0)
    args = parser.parse_args()
    if args.role == "server":
        trio.run(serve, args.mode, args.bytes)
        return
    if args.role == "client":
        trio.run(client, args.mode, args.addr, json.loads(args.hashes))
        return
    if args.role == "latency":
        trio.run(latency_group, args.count, args.boot, args.publish)
        return
    sizes = [s * MiB for s in args.sizes]
    transfer = measure(sizes, args.reps)
    table = {}
    for size in sizes:
        ours, dflt, tcp = (transfer[m]["mib_per_s"][size] for m in ("ours", "defaults", "tcp"))
        table[f"{size // MiB}MiB"] = {
            "ours_mib_s": round(ours, 1), "defaults_mib_s": round(dflt, 1),
            "tcp_mib_s": round(tcp, 1), "ours_over_defaults": round(ours / dflt, 2),
            "ours_over_tcp": round(ours / tcp, 3),
        }
        print(f"{size // MiB:>3} MiB  ours {ours:7.1f} MiB/s  defaults {dflt:7.1f}  "
              f"tcp {tcp:7.1f}  ours/defaults {ours / dflt:4.2f}x  ours/tcp {ours / tcp:5.3f}")
    lat = latency()
    print(f"announcement to all {lat['peers']} peers: p50 {lat['p50_ms']:.1f} ms, "
          f"p95 {lat['p95_ms']:.1f} ms ({lat['reached_all']}/{lat['announcements']} reached all)")
    memory = {
        "idle_host_process_rss_mib": transfer["ours"]["server_rss_mib"],
        "client_after_transfers_rss_mib": transfer["ours"]["client_rss_mib"],
        "per_host_with_4_hosts_per_process_mib": round(lat["rss_mib_per_host_4_per_process"], 1),
    }
    print(f"memory: {memory}")
    load = os.getloadavg()
    result = {
        "transfer": table, "announcement_latency": lat, "memory": memory,
        "reps_per_size": args.reps, "loadavg_at_end": load, "cpus": os.cpu_count(),
        "note": "two OS processes per case on 127.0.0.1, cases interleaved; median of reps; receiver hashes (keccak256)",
    }
    out = ROOT / "bench" / "results" / "transport.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
