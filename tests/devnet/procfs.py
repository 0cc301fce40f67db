"""Watching processes through /proc: who are a process's descendants, and are they gone.

A process is told apart from a later one that reuses its PID by its start time (field
22 of /proc/PID/stat); a zombie (exited, not yet reaped) counts as gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    started: int
    """clock ticks after boot (/proc/PID/stat field 22)."""
    cmdline: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.pid} {' '.join(self.cmdline)[:120]}"


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of `pid`, None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and ")"
    return fields[0], int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> tuple[str, ...]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def children(pid: int) -> list[Proc]:
    """The live direct children of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and stat[1] == pid and stat[0] not in "ZX":
            found.append(Proc(int(entry.name), stat[2], _cmdline(int(entry.name))))
    return found


def descendants(pid: int) -> list[Proc]:
    """The live children of `pid`, their children, and so on."""
    found: list[Proc] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child.pid)
    return found


def alive(proc: Proc) -> bool:
    """Is this very process (not a PID reuse) still running (not a zombie)?"""
    stat = _stat(proc.pid)
    return stat is not None and stat[0] not in "ZX" and stat[2] == proc.started


def wait_for(predicate: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    """Poll `predicate` until it holds or `timeout` passes; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True
