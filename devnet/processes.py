"""Long-lived child processes that end with the process that started them.

anvil and the localnet's peers run in their own session, so that Ctrl-C in a terminal
reaches only the parent, which then stops them in order (peers first, then the chain).
Their own session also means that nothing stops them when the parent dies without
cleaning up (SIGKILL, an OOM kill, a crash): they would run on, orphaned. `spawn` asks
Linux to send such a child a signal when its parent dies, whatever killed the parent
(prctl PR_SET_PDEATHSIG, set in the child between fork and exec).

PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process:
a child spawned from a worker thread would be signalled when that thread ends. `spawn`
therefore refuses `die_with_parent=True` outside the main thread.

`interrupt_on_terminate` makes SIGTERM (what `kill`, `timeout` and supervisors send)
raise like Ctrl-C does, so a command's cleanup runs for both.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO

__all__ = ["Terminated", "interrupt_on_terminate", "spawn"]

PR_SET_PDEATHSIG = 1
"""<linux/prctl.h>: the signal a process receives when its parent (thread) dies."""

_Target = int | IO[bytes] | None


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised where Ctrl-C raises KeyboardInterrupt, so the same
    cleanup runs. `exit_code` is the shell's 128 + SIGTERM."""

    exit_code = 128 + signal.SIGTERM


@functools.cache
def _prctl() -> Callable[[int, int, int, int, int], int]:
    """libc's prctl, resolved in the parent: the child between fork and exec should
    do as little as possible (no symbol lookup, no import)."""
    if not sys.platform.startswith("linux"):
        raise RuntimeError("children that die with their parent need Linux (prctl PR_SET_PDEATHSIG)")
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl  # type: ignore[no-any-return]


def _die_with(parent: int, death_signal: int) -> Callable[[], None]:
    """The child's preexec_fn: ask for `death_signal` when `parent` dies."""
    prctl = _prctl()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(128 + death_signal)

    return preexec


def spawn(
    args: Sequence[str | os.PathLike[str]],
    *,
    stdin: _Target = subprocess.DEVNULL,
    stdout: _Target = None,
    stderr: _Target = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a long-lived child in its own session (no fds inherited but stdio).

    With `die_with_parent`, the child receives `death_signal` (SIGTERM: anvil saves its
    chain, a peer writes its status) when this process dies, however it dies. Call it
    from the main thread (see the module docstring).
    """
    preexec: Callable[[], None] | None = None
    if die_with_parent:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "spawn(die_with_parent=True) must run on the main thread: the parent-death "
                "signal would fire when this thread exits"
            )
        preexec = _die_with(os.getpid(), death_signal)
    return subprocess.Popen(
        [os.fspath(a) for a in args],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        close_fds=True,
        # Python in the forked child: kept to one prctl and one getppid, nothing to
        # import or look up (the cached prctl was resolved above, in the parent).
        preexec_fn=preexec,  # noqa: PLW1509
    )


@contextmanager
def interrupt_on_terminate() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` (a KeyboardInterrupt).

    One-shot: the handler restores the default action first, so a second SIGTERM
    during the cleanup ends the process at once (its `spawn`ed children then follow
    by their parent-death signal). Main thread only, as every Python signal handler.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
