"""Files written whole or not at all: the one ``atomic_write`` of the project.

Key files, checkpoints, manifests, linkage tables and devnet.json are all rewritten while
other processes may read them and while the machine may lose power. ``atomic_write``
writes a temporary file in the same folder, fsyncs it, renames it over the target and
fsyncs the folder, so a reader sees the old content or the new one, never a mix, and
after a crash the rename is either on disk or not at all.

It lives in ``gossip`` because that is the lowest package: ``node`` and ``devnet`` both
import it, and nothing here imports anything of ours.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

__all__ = ["atomic_write"]

_TEMP_ATTEMPTS = 8


def atomic_write(
    path: str | os.PathLike[str], data: bytes | str, mode: int = 0o600, *, exclusive: bool = False
) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    ``mode`` is applied from the first byte (the temporary file is created with it,
    so a private file is never readable by others, even briefly) and, as with
    ``open()``, the process umask can only remove bits from it: pass ``0o666`` to let
    the umask decide. Text is written as UTF-8. Missing parent folders are created.
    On any error the temporary file is removed, the target keeps its old content and
    the error (usually an ``OSError``) propagates.

    ``exclusive=True`` never replaces: it raises ``FileExistsError`` if ``path`` exists
    (a key file must not be overwritten by a second process creating one at once),
    and still never leaves a half-written file behind.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(target, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, target)  # atomic, and fails if target exists
            tmp.unlink()
        else:
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _create_temp(target: Path, mode: int) -> tuple[int, Path]:
    """A new file next to ``target`` (same filesystem, so the rename is atomic)."""
    for _ in range(_TEMP_ATTEMPTS):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (the folder's entry, not only the file's data)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some filesystems cannot sync a folder: nothing to do
            raise
    finally:
        os.close(fd)
