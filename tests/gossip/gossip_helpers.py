"""Shared helpers for the gossip tests: start real hosts, poll conditions with deadlines."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from gossip import GossipConfig, GossipNetwork
from gossip.identity import generate_secret


def make_payload(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (same in every process)."""
    return hashlib.shake_256(seed.to_bytes(8, "big")).digest(size)


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@asynccontextmanager
async def networks(
    count: int,
    *,
    network_id: str = "test",
    is_member: Any = None,
    bootstrap: Sequence[str] = (),
    **overrides: Any,
) -> AsyncIterator[list[GossipNetwork]]:
    """``count`` hosts in this process in a star around the first (plus ``bootstrap``)."""
    async with AsyncExitStack() as stack:
        nets: list[GossipNetwork] = []
        for index in range(count):
            boot = list(bootstrap) + (nets[0].listen_addrs if index else [])
            config = GossipConfig(
                generate_secret(), network_id, bootstrap=boot, is_member=is_member, **overrides
            )
            nets.append(await stack.enter_async_context(GossipNetwork(config)))
        yield nets


async def wait_for_mesh(nets: Sequence[GossipNetwork], timeout: float = 20.0) -> None:
    """Every host sees the hub (first) as a topic member and the hub sees everyone."""
    hub = nets[0]
    others = {n.peer_id for n in nets[1:]}
    await wait_until(
        lambda: others <= set(hub.member_peers())
        and all(hub.peer_id in n.member_peers() for n in nets[1:]),
        timeout,
        "the announcement mesh",
    )


async def collect_announcements(
    net: GossipNetwork, into: list[Any], task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    async for received in net.announcements():
        into.append(received)


def in_mesh(net: GossipNetwork, peer_id: str) -> bool:
    """Is ``peer_id`` in ``net``'s GossipSub mesh for its topic (so a publish reaches it)?"""
    mesh = net._parts.gossipsub.mesh.get(net.config.topic, set())
    return peer_id in {str(peer) for peer in mesh}


def count_failed_dials(net: GossipNetwork) -> list[int]:
    """Count ``net``'s failed outbound dials from now on, in the returned one-item list."""
    host = net._parts.host
    dial = host.connect
    failed = [0]

    async def connect(*args: Any, **kwargs: Any) -> None:
        try:
            await dial(*args, **kwargs)
        except Exception:
            failed[0] += 1
            raise

    host.connect = connect
    return failed


def new_secret() -> bytes:
    return generate_secret()
