"""Serving the explorer: Hypercorn's trio worker runs the app while a trio task keeps
the index in step with the chain.

The sync runs in a worker thread (web3 is blocking), a bounded number of blocks per
call so that a first index of a long chain shows progress on the pages and Ctrl-C is
not held up for long. A chain that cannot be reached is logged once (and once more
when it is back), as is an index file that cannot be written; the pages keep serving
the index as it was, with its lag; so does an index that fails on what the chain
holds (a bug, logged with its traceback once).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.types import ASGIApp

from contracts.errors import LedgerError
from node.explorer.index import Index, IndexStatus

__all__ = ["SYNC_BLOCKS", "ServeOptions", "keep_synced", "run_explorer"]

log = logging.getLogger("medgossip.explorer")

SYNC_BLOCKS = 2000
"""Blocks indexed per sync call; while behind, the next call follows at once."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    poll: float = 0.5
    """seconds between syncs once the index has caught up with the head (with the
    pages' 1 s poll, a new block is on an open page within 1.5 s)."""


async def keep_synced(index: Index, poll: float, on_sync: Callable[[IndexStatus], None] | None = None) -> None:
    """Sync forever: at once while behind, every `poll` seconds once caught up."""
    failing = False
    while True:
        try:
            status = await trio.to_thread.run_sync(index.sync, SYNC_BLOCKS, abandon_on_cancel=True)
        except (LedgerError, sqlite3.Error) as exc:  # chain unreachable, disk trouble: retry, keep serving
            if not failing:
                log.warning("explorer: cannot sync the index (%s: %s); pages show the index as it is, retrying",
                            type(exc).__name__, exc)
            failing = True
            await trio.sleep(max(poll, 1.0))
            continue
        except Exception:  # a bug meeting what the chain holds: the pages stay up, the lag shows it
            if not failing:
                log.exception("explorer: the index could not take the next blocks (a bug: please report it); "
                              "pages show the index as it is, retrying")
            failing = True
            await trio.sleep(max(poll, 1.0))
            continue
        if failing:
            log.info("explorer: chain reachable again, head block %d", status.head_block)
            failing = False
        if on_sync is not None:
            on_sync(status)
        if status.lag_blocks == 0:
            await trio.sleep(poll)


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    http_log = logging.getLogger("medgossip.explorer.http")
    http_log.setLevel(logging.WARNING)  # its start line repeats ours; its errors stay
    config.errorlog = http_log
    config.graceful_timeout = 2.0
    config.include_server_header = False
    return config


async def run_explorer(
    index: Index, app: ASGIApp, options: ServeOptions, *,
    on_ready: Callable[[str], None], on_sync: Callable[[IndexStatus], None] | None = None,
) -> None:
    """Serve `app` and keep `index` synced until cancelled (Ctrl-C)."""
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, hypercorn_config(options.host, options.port))
        on_ready(binds[0] if binds else f"http://{options.host}:{options.port}")
        nursery.start_soon(keep_synced, index, options.poll, on_sync)
