"""Running `medgossip` in tests, and the check every CLI failure must pass.

`run` starts the real console script in a subprocess (what a user runs); `call` runs
the same typer app in-process (cheaper: no second interpreter importing web3/torch).
`one_clear_line` is the contract of the CLI's error boundary: a non-zero exit, no
traceback, and exactly one line on stderr that says what went wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MEDGOSSIP = str(Path(sys.executable).with_name("medgossip"))


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> Ran:
    """`medgossip ARGS` as a real subprocess."""
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([MEDGOSSIP, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)
    return Ran(done.returncode, done.stdout, done.stderr)


def call(*args: str) -> Ran:
    """The same typer app, in-process; an exception that escapes it is re-raised."""
    from typer.testing import CliRunner

    from node.cli import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def one_clear_line(result: Ran, *needles: str) -> str:
    """Assert a failure reported as one line on stderr containing every needle; return it."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
