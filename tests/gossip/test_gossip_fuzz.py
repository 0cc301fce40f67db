"""10,000 random or malformed frames on every protocol the host speaks; it keeps serving."""

from __future__ import annotations

import random

import trio

from gossip import Announcement
from gossip.transfer import keccak256

from .gossip_helpers import collect_announcements, make_payload, networks, wait_for_mesh, wait_until

FRAMES = 10_000
FRAMES_PER_STREAM = 25


def _frame(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return b"\x03\xff\xff\xff"  # the 4-byte frame that killed a default host
    if kind == 1:  # varint length prefix far over every limit
        return b"\xff\xff\xff\xff\x0f" + rng.randbytes(rng.randrange(64))
    if kind == 2:  # plausible length, garbage protobuf
        body = rng.randbytes(rng.randrange(1, 200))
        return bytes([len(body)]) + body
    if kind == 3:  # our request magic with truncated or random hash
        return b"MGD1" + rng.randbytes(rng.randrange(40))
    if kind == 4:
        return b""
    return rng.randbytes(rng.randrange(1, 512))


async def _attack(attacker: object, target_id: str, protocol: str, frames: int, seed: int) -> int:
    """Write ``frames`` fuzz frames on fresh streams of ``protocol``; return how many went out.

    The target resets a stream as soon as it sees garbage, so the writes after that fail
    and do not count; new streams are opened until enough frames went out (or too many
    streams were refused to go on).
    """
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    rng = random.Random(seed)
    sent = 0
    max_streams = 10 * -(-frames // FRAMES_PER_STREAM)
    for _ in range(max_streams):
        if sent >= frames:
            break
        try:
            stream = await attacker._parts.host.new_stream(  # type: ignore[attr-defined]
                ID.from_base58(target_id), [TProtocol(protocol)]
            )
        except Exception:  # the target may refuse/reset; that is fine
            continue
        try:
            for _ in range(FRAMES_PER_STREAM):
                await stream.write(_frame(rng))
                sent += 1
        except Exception:  # reset by the target mid-stream: the expected outcome
            pass
        finally:
            with trio.move_on_after(0.5):
                try:
                    await (stream.reset() if rng.random() < 0.5 else stream.close())
                except Exception:
                    pass
    return sent


async def test_fuzzed_host_stays_up_and_serves_an_honest_peer() -> None:
    async with networks(3) as (target, attacker, honest), trio.open_nursery() as nursery:
        await wait_for_mesh([target, attacker, honest])
        protocols = sorted(
            str(p) for p in target._parts.host.multiselect.handlers if p is not None
        )
        assert "/medgossip/delta/1.0.0" in protocols and "/meshsub/1.1.0" in protocols
        frames_per_protocol = -(-FRAMES // len(protocols))
        counts: list[int] = []

        async def run(protocol: str, seed: int) -> None:
            counts.append(
                await _attack(attacker, target.peer_id, protocol, frames_per_protocol, seed)
            )

        async with trio.open_nursery() as attack:
            for seed, protocol in enumerate(protocols):
                attack.start_soon(run, protocol, seed)
        assert sum(counts) >= FRAMES, f"only {sum(counts)} frames went out"

        # The target is still up: it serves a payload and relays a new announcement.
        inbox: list = []
        await nursery.start(collect_announcements, honest, inbox)
        payload = make_payload(200_000, 9)
        digest = keccak256(payload)
        await target.announce(Announcement(target.peer_id, 1, digest, len(payload), "fp32", {}),
                              payload=payload)
        await wait_until(lambda: any(r.delta_hash == digest for r in inbox), 20,
                         "an announcement after the fuzzing")
        assert await honest.fetch(digest, [target.peer_id]) == payload
        dropped = target.stats.dropped
        assert sum(dropped.values()) > 0
        nursery.cancel_scope.cancel()
