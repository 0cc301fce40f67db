"""`Durable`: the node's state (`NodeState`) and the one way to make it durable.

Only trio tasks change the state; `save()` takes a snapshot on the trio thread and
writes it from a worker thread, one save at a time, so the last save always writes
the newest state and no worker ever sees a container that is being changed.
"""

from __future__ import annotations

import trio

from node.checkpoint import CheckpointStore, NodeState


class Durable:
    def __init__(self, store: CheckpointStore, state: NodeState | None = None) -> None:
        self.store = store
        self.state = state if state is not None else NodeState()
        self._lock = trio.Lock()

    async def save(self) -> None:
        async with self._lock:
            snapshot = self.state.snapshot()
            await trio.to_thread.run_sync(self.store.save_state, snapshot)
