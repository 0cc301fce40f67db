"""Children started with devnet.processes.spawn end with their parent, however it ends;
SIGTERM inside interrupt_on_terminate runs the same cleanup as Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devnet.processes import Terminated, interrupt_on_terminate, spawn
from tests.devnet.procfs import Proc, alive, children, wait_for

REPO = Path(__file__).resolve().parents[2]

PARENT = """
import sys
from devnet.processes import spawn
spawn(["sleep", "300"], die_with_parent=sys.argv[1] == "tied")
print("spawned", flush=True)
sys.stdin.read()
"""


def _parent_with_a_child(mode: str) -> tuple[subprocess.Popen[str], Proc]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert parent.stdout is not None and parent.stdout.readline() == "spawned\n"
    (child,) = children(parent.pid)
    assert child.cmdline == ("sleep", "300")
    return parent, child


def _kill(proc: Proc) -> None:
    if alive(proc):
        os.kill(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_spawned_child_dies_with_its_parent(sig: signal.Signals) -> None:
    parent, child = _parent_with_a_child("tied")
    try:
        parent.send_signal(sig)
        parent.wait(10)
        assert wait_for(lambda: not alive(child), 10), f"{child} outlived its parent ({sig.name})"
    finally:
        _kill(child)


def test_an_untied_child_outlives_its_parent() -> None:
    """The control: what `medgossip devnet start` wants, and what the test above detects."""
    parent, child = _parent_with_a_child("detached")
    try:
        parent.kill()
        parent.wait(10)
        assert not wait_for(lambda: not alive(child), 1.0), "the detached child died with its parent"
    finally:
        _kill(child)


def test_a_child_is_not_tied_to_a_worker_thread() -> None:
    """PR_SET_PDEATHSIG would fire when the worker thread exits: refused, loudly."""
    with ThreadPoolExecutor(1) as pool:
        attempt = pool.submit(spawn, ["true"])
        with pytest.raises(RuntimeError, match="main thread"):
            attempt.result()


def test_sigterm_raises_terminated_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as raised, interrupt_on_terminate():
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: False, 5)  # the handler raises out of this
    assert isinstance(raised.value, KeyboardInterrupt)
    assert raised.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_second_sigterm_during_cleanup_ends_the_process() -> None:
    script = """
import os, signal, time
from devnet.processes import Terminated, interrupt_on_terminate
with interrupt_on_terminate():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except Terminated:
        print("cleaning up", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("survived a second SIGTERM", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert done.stdout == "cleaning up\n"
    assert done.returncode == -signal.SIGTERM
