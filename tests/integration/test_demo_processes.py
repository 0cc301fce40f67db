"""`medgossip demo` leaves no process behind: stopped (SIGTERM, as `kill`, `timeout` and
supervisors send) it stops anvil and its peers itself; killed (SIGKILL) it cannot, and
its children end by their parent-death signal (devnet.processes.spawn).

The real demo as an OS process: corpus, ingest, anvil, AuditLedger, peer processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.devnet.procfs import Proc, alive, descendants, wait_for
from tests.integration.peer_harness import tail

REPO = Path(__file__).resolve().parents[2]
PEERS = 2
GONE_WITHIN = 10.0
"""seconds after the signal by which every process the demo started must have ended."""


def _listening(workdir: Path) -> bool:
    """Every peer wrote addrs.json: it runs and listens (not merely forked)."""
    return all((workdir / f"peer-{i}" / "checkpoint" / "addrs.json").exists() for i in range(PEERS))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_demo_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    workdir = tmp_path / "run"
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "demo", "--peers", str(PEERS), "--rounds", "500",
             "--local-steps", "1", "--fan-out", "1", "--workdir", str(workdir), "--report", str(tmp_path / "report")],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "COLUMNS": "120"},
        )
    started: list[Proc] = []
    try:
        running = wait_for(lambda: _listening(workdir) or demo.poll() is not None, 300, poll=0.5)
        assert running and demo.poll() is None, f"the demo did not get its peers running:\n{tail(log, 40)}"
        started = descendants(demo.pid)
        anvils = [p for p in started if p.cmdline and Path(p.cmdline[0]).name == "anvil"]
        peers = [p for p in started if p.cmdline[2:5] == ("node.cli", "node", "start")]
        assert len(anvils) == 1 and len(peers) == PEERS, (
            f"expected anvil and {PEERS} peers under the demo, found:\n" + "\n".join(map(str, started))
        )

        demo.send_signal(sig)
        wait_for(lambda: not any(alive(p) for p in started), GONE_WITHIN)
        left = [p for p in started if alive(p)]
        assert not left, f"still running {GONE_WITHIN:.0f} s after {sig.name}:\n" + "\n".join(map(str, left))
        code = demo.wait(30)
        assert code == (128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGKILL), tail(log, 40)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for proc in started:
            if alive(proc):
                os.kill(proc.pid, signal.SIGKILL)
