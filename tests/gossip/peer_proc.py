"""A gossip peer as its own OS process, driven by the multi-process tests.

    python -m tests.gossip.peer_proc --secret HEX --network N [--bootstrap ADDR]...
        [--provide SIZE:SEED]... [--announce-every SECONDS --round-start R]
        [--stall-serving]

Prints JSON lines on stdout: {"ready": addrs, "peer_id", "hashes": {size: hex}}, then one
{"announcement": {...}} per announcement heard, and {"serving": hex} when --stall-serving
has sent half a payload and then stops (so a test can kill -9 it mid-transfer).
"""

from __future__ import annotations

import argparse
import json
import sys

import trio

from gossip import Announcement, GossipConfig, GossipNetwork
from gossip.transfer import DELTA_PROTOCOL, keccak256
from tests.gossip.gossip_helpers import make_payload


def _say(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    config = GossipConfig(bytes.fromhex(args.secret), args.network, bootstrap=args.bootstrap,
                          listen=[f"/ip4/127.0.0.1/tcp/{args.port}"])
    async with GossipNetwork(config) as net, trio.open_nursery() as nursery:
        hashes = {}
        payloads = {}
        for spec in args.provide:
            size, seed = (int(x) for x in spec.split(":"))
            payload = make_payload(size, seed)
            digest = keccak256(payload)
            net.provide(digest, payload)
            hashes[str(size)] = digest.hex()
            payloads[digest] = payload
        if args.stall_serving:
            import struct

            async def stall(stream: object) -> None:
                request = b""
                while len(request) < 36:
                    request += await stream.read(36 - len(request))  # type: ignore[attr-defined]
                payload = payloads[request[4:]]
                await stream.write(struct.pack(">BQ", 0, len(payload)) + payload[: len(payload) // 2])  # type: ignore[attr-defined]
                _say({"serving": request[4:].hex()})
                await trio.sleep_forever()

            net._parts.host.set_stream_handler(DELTA_PROTOCOL, stall)
        _say({"ready": net.listen_addrs, "peer_id": net.peer_id, "hashes": hashes})

        async def listen() -> None:
            async for received in net.announcements():
                _say({"announcement": {"sender": received.sender, "round": received.round}})

        nursery.start_soon(listen)
        if args.announce_every > 0:
            round_ = args.round_start
            digest = keccak256(b"tick")
            while True:
                await net.announce(Announcement(net.peer_id, round_, digest, 4, "fp32", {}))
                round_ += 1
                await trio.sleep(args.announce_every)
        await trio.sleep_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True)
    parser.add_argument("--network", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--provide", action="append", default=[])
    parser.add_argument("--announce-every", type=float, default=0.0)
    parser.add_argument("--round-start", type=int, default=0)
    parser.add_argument("--stall-serving", action="store_true")
    trio.run(main, parser.parse_args())
