"""Proof uploads: the explorer's only request bodies, bounded before they are parsed.

A body over the limit is refused with 413 whether the client declared its size
(Content-Length, checked before reading) or not (counted while streaming). The rest of
an oversized body is read and dropped, up to `DRAIN_LIMIT`, so that the client, still
sending, receives the 413 instead of a reset connection. Uploaded files are written to
a temporary folder under their base names and removed when the request ends.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message, Receive

__all__ = ["MAX_UPLOAD_BYTES", "BadUpload", "UploadTooLarge", "Uploaded", "received_files"]

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
"""A proof folder of a few hundred rounds is well under a megabyte."""
DRAIN_LIMIT = 64 * 1024 * 1024
"""Read and drop at most this much of a refused body; beyond it the connection is closed."""
MAX_FILES = 2000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class UploadTooLarge(Exception):
    """The request body is over the limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is over the limit of {limit // (1024 * 1024)} MB: send only the proof files")
        self.limit = limit


class BadUpload(Exception):
    """Not a multipart upload with the expected files (HTTP 400)."""


@dataclass(frozen=True)
class Uploaded:
    """One uploaded file: the name the client gave (for messages) and where it is now."""

    name: str
    path: Path


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive`, raising UploadTooLarge once the body passes `limit` bytes (after
    draining what is left of it, up to DRAIN_LIMIT)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                await _drain(receive, message, seen)
                raise UploadTooLarge(limit)
        return message

    return wrapped


async def _drain(receive: Receive, message: Message, seen: int) -> None:
    while message.get("more_body", False) and seen <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))


async def refuse_declared_oversize(request: Request, limit: int) -> None:
    """413 before reading anything when Content-Length already says too much."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise BadUpload("Content-Length is not a number")
    if int(declared) > limit:
        if int(declared) <= DRAIN_LIMIT:
            await _drain(request.receive, {"more_body": True}, 0)
        raise UploadTooLarge(limit)


@asynccontextmanager
async def received_files(request: Request, field: str, *, limit: int = MAX_UPLOAD_BYTES) -> AsyncIterator[list[Uploaded]]:
    """The files of multipart field `field`, saved in a temporary folder for the block."""
    await refuse_declared_oversize(request, limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadUpload("send the proof files as multipart/form-data (a file upload form)")
    bounded = Request(request.scope, _limited(request.receive, limit))
    try:
        form = await bounded.form(max_files=MAX_FILES, max_fields=20, max_part_size=limit)
    except UploadTooLarge:
        raise
    except Exception as exc:  # starlette's MultiPartException and python-multipart's parse errors
        raise BadUpload(f"cannot read the upload: {exc}") from exc
    try:
        # An empty file input still sends a part (no name, no bytes): not an upload.
        uploads = [item for item in form.getlist(field) if isinstance(item, UploadFile) and (item.filename or item.size)]
        if not uploads:
            raise BadUpload(f"no file in the upload: send the proof file(s) as the form field {field!r}")
        with tempfile.TemporaryDirectory(prefix="medgossip-explorer-") as folder:
            yield [await _save(item, Path(folder), i) for i, item in enumerate(uploads)]
    finally:
        await form.close()


async def _save(upload: UploadFile, folder: Path, position: int) -> Uploaded:
    """Write one upload under a safe, unique name that keeps its base name (so that
    index.json stays index.json) and .json suffix."""
    given = Path((upload.filename or "").replace("\\", "/")).name or f"upload-{position}.json"
    safe = _SAFE_NAME.sub("_", given)[-100:].lstrip(".") or f"upload-{position}.json"
    path = folder / safe
    if path.exists():
        path = folder / f"{position}-{safe}"
    path.write_bytes(await upload.read())
    return Uploaded(given, path)
