"""atomic_write: content, permissions, and no trace of a write that failed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gossip.files import atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def test_writes_bytes_and_text(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a.bin", b"\x00\xffbytes")
    atomic_write(tmp_path / "b.txt", "grüße\n")

    assert (tmp_path / "a.bin").read_bytes() == b"\x00\xffbytes"
    assert (tmp_path / "b.txt").read_bytes() == "grüße\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt"]  # no temporary left


def test_replaces_an_existing_file_and_creates_missing_folders(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "state.json"
    atomic_write(target, "old")

    atomic_write(target, "new")

    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_private_by_default_even_when_replacing_a_readable_file(tmp_path: Path) -> None:
    target = tmp_path / "linkage.json"
    target.write_text("was readable")
    target.chmod(0o644)

    atomic_write(target, "secret")

    assert _mode(target) == 0o600


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_mode_is_applied_minus_the_umask(tmp_path: Path, mode: int) -> None:
    atomic_write(tmp_path / "f", b"x", mode=mode)

    assert _mode(tmp_path / "f") == mode & ~_umask()


def test_exclusive_refuses_to_replace(tmp_path: Path) -> None:
    target = tmp_path / "node.key"
    atomic_write(target, "first", exclusive=True)

    with pytest.raises(FileExistsError):
        atomic_write(target, "second", exclusive=True)

    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["node.key"]


def test_failed_rename_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("a folder cannot be replaced by a file")

    with pytest.raises(OSError):
        atomic_write(target, b"data")

    assert target.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


# A real failed write: the file size limit (as a full disk would) stops the write half
# way. Run in a child process so the limit does not touch the test runner.
_WRITE_OVER_LIMIT = """
import resource, signal, sys
from gossip.files import atomic_write
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    atomic_write(sys.argv[1], b"n" * 100_000)
except OSError as exc:
    print(type(exc).__name__, exc.errno)
    sys.exit(3)
"""


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    atomic_write(target, b"old content")
    root = Path(__file__).resolve().parents[2]

    run = subprocess.run(
        [sys.executable, "-c", _WRITE_OVER_LIMIT, str(target)],
        capture_output=True, text=True, cwd=root, timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )

    assert run.returncode == 3, run.stdout + run.stderr  # the write really failed
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
