"""The explorer's web application: server-rendered pages over the index, each mirrored
as JSON under /api/ from the same `node.explorer.queries` function.

Read-only but for proof verification (a bounded upload, `uploads.py`). It shows what
hostile parties wrote on chain, so: Jinja2 autoescapes every template, every response
carries a strict Content-Security-Policy (no inline script or style: app.js reads the
chart data from /api/), and no request ends in a traceback: bad parameters are 400,
unknown hashes 404, anything else a plain 500 page, logged.

The app is framework-only (Starlette on anyio, served on trio by `server.py`); the
sqlite index is read in worker threads through `connect`, one connection per request.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.explorer import queries
from node.explorer.index import read_status
from node.explorer.present import FILTERS
from node.explorer.uploads import MAX_UPLOAD_BYTES, BadUpload, UploadTooLarge, received_files
from node.explorer.verdicts import contribution_verdict, report_json

if TYPE_CHECKING:
    from contracts.ledger import AuditLedger

__all__ = ["CSP", "NODE_MODULES", "create_app"]

log = logging.getLogger("medgossip.explorer")

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE.parents[1] / "node_modules"
"""The repository's npm folder (package.json pins uplot and js-sha3)."""
VENDOR = {"uplot": "uplot/dist", "js-sha3": "js-sha3/build"}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
_HEX32 = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_PER_PAGE = (1, 500)
RECENT_EVENTS = 20
"""The overview lists the contributions among this many latest events."""


class SecurityHeaders:
    """Adds the security headers to every HTTP response, error pages and files included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class Explorer:
    """What the routes need: the index to read and, for folder verification, a chain."""

    connect: Callable[[], sqlite3.Connection]
    open_ledger: Callable[[], AuditLedger] | None
    templates: Jinja2Templates
    max_upload: int

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(db, *args, **kwargs) in a worker thread, on a fresh read connection; a
        ValueError (malformed input, queries.py's contract) becomes 400."""

        def run() -> Any:
            db = self.connect()
            try:
                return fn(db, *args, **kwargs)
            finally:
                db.close()

        try:
            return await anyio.to_thread.run_sync(run)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc

    def page(self, request: Request, template: str, data: dict[str, Any], status: int = 200,
             **extra: Any) -> Response:
        return self.templates.TemplateResponse(request, template, {"data": data, **extra}, status_code=status)

    async def live_context(self, template: str) -> dict[str, Any]:
        """What a live page needs beyond its payload: the event number to poll from,
        and on the overview the latest contributions (those among the last events)."""
        if template not in ("overview.html", "node.html"):
            return {}

        def load(db: sqlite3.Connection) -> dict[str, Any]:
            seq = read_status(db).events
            recent = queries.since(db, max(0, seq - RECENT_EVENTS))["contributions"] if template == "overview.html" else []
            return {"seq": seq, "recent": recent}

        return await self.read(load)  # type: ignore[no-any-return]


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise HTTPException(400, f"{name} must be a whole number from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be a whole number from {low} to {high}")
    return value


def _hex32(value: str, what: str) -> str:
    if not _HEX32.fullmatch(value):
        raise HTTPException(400, f"{what} must be 32 bytes: 64 hex characters, optionally 0x-prefixed")
    return "0x" + value.lower().removeprefix("0x")


def _found(data: Any, what: str) -> Any:
    if data is None:
        raise HTTPException(404, f"no {what} in the index")
    return data


# --- page loaders: request -> the queries.py dict (the page's context and its /api/ JSON)


async def _overview(ex: Explorer, request: Request) -> dict[str, Any]:
    return await ex.read(queries.overview)  # type: ignore[no-any-return]


async def _node(ex: Explorer, request: Request) -> dict[str, Any]:
    page = _int_param(request, "page", 1, 1, 10**6)
    per_page = _int_param(request, "per_page", 50, *_PER_PAGE)
    params = request.query_params
    data = await ex.read(queries.node_page, request.path_params["address"], page=page, per_page=per_page,
                         sort=params.get("sort", "round"), order=params.get("order", "desc"))
    return _found(data, f"node {request.path_params['address']}")  # type: ignore[no-any-return]


async def _contribution(ex: Explorer, request: Request) -> dict[str, Any]:
    delta_hash = request.path_params["delta_hash"]
    return _found(await ex.read(queries.contribution, delta_hash), f"contribution {delta_hash}")  # type: ignore[no-any-return]


async def _subject(ex: Explorer, request: Request) -> dict[str, Any]:
    return await ex.read(queries.subject, request.path_params["commitment"])  # type: ignore[no-any-return]


PAGES: dict[str, tuple[str, str, Callable[..., Any]]] = {
    # HTML path: (its /api/ path, template, loader)
    "/": ("/api/overview", "overview.html", _overview),
    "/node/{address}": ("/api/node/{address}", "node.html", _node),
    "/contribution/{delta_hash}": ("/api/contribution/{delta_hash}", "contribution.html", _contribution),
    "/subject/{commitment}": ("/api/subject/{commitment}", "subject.html", _subject),
}


def _routes(ex: Explorer) -> list[Route | Mount]:
    routes: list[Route | Mount] = []
    for path, (api_path, template, load) in PAGES.items():

        async def html(request: Request, load: Callable[..., Any] = load, template: str = template) -> Response:
            data = await load(ex, request)
            return ex.page(request, template, data, **await ex.live_context(template))

        async def api(request: Request, load: Callable[..., Any] = load) -> Response:
            return JSONResponse(await load(ex, request))

        routes += [Route(path, html), Route(api_path, api)]

    async def patient(request: Request) -> Response:
        commitment = request.query_params.get("commitment")
        if commitment:  # the commitment form without JavaScript (a token never comes here: its input has no name)
            return RedirectResponse(f"/subject/{_hex32(commitment.strip(), 'a subject commitment')}", 303)
        return ex.page(request, "patient.html", {})

    async def search(request: Request) -> Response:
        text = request.query_params.get("q", "").strip()
        if not text:
            raise HTTPException(400, "type a delta hash, address, peer ID, subject commitment or transaction hash")
        target = await ex.read(queries.search, text)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"query": text, "path": _found(target, f"match for {text!r}")})
        if target is None:
            return ex.page(request, "search.html", {"query": text}, status=404)
        return RedirectResponse(target, 303)

    async def since(request: Request) -> Response:
        seq = _int_param(request, "seq", 0, 0, 10**12)
        return JSONResponse(await ex.read(queries.since, seq))

    async def verify_contribution(request: Request) -> Response:
        delta_hash = request.path_params["delta_hash"]
        record = _found(await ex.read(queries.contribution, delta_hash), f"contribution {delta_hash}")
        async with received_files(request, "proof", limit=ex.max_upload) as files:
            if len(files) != 1:
                raise BadUpload(f"send exactly one proof file (got {len(files)})")

            def judge(db: sqlite3.Connection) -> dict[str, Any]:
                return contribution_verdict(files[0], record, lambda s: queries.subject(db, s))

            return JSONResponse(await ex.read(judge))

    async def verify_subject(request: Request) -> Response:
        from contracts.errors import LedgerError
        from gossip.errors import MedgossipError
        from node.audit import verify_audit

        subject = bytes.fromhex(_hex32(request.path_params["commitment"], "the subject commitment")[2:])
        if ex.open_ledger is None:
            raise HTTPException(503, "this explorer has no chain connection to verify a proof folder against")
        open_ledger = ex.open_ledger
        async with received_files(request, "proofs", limit=ex.max_upload) as files:
            def run() -> dict[str, Any]:
                return report_json(verify_audit(open_ledger(), [f.path for f in files], subject), files)

            try:
                return JSONResponse(await anyio.to_thread.run_sync(run))
            except LedgerError as exc:
                log.warning("verify: chain error %s", type(exc).__name__)
                raise HTTPException(503, f"the chain cannot be reached to verify against: {exc}") from exc
            except MedgossipError as exc:  # AuditError mostly: the folder cannot be verified at all
                raise HTTPException(400, _without_paths(str(exc), files)) from exc

    routes += [
        Route("/patient", patient),
        Route("/search", search),
        Route("/api/search", search),
        Route("/api/since", since),
        Route("/api/verify/contribution/{delta_hash}", verify_contribution, methods=["POST"]),
        Route("/api/verify/subject/{commitment}", verify_subject, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return routes


def _without_paths(message: str, files: Any) -> str:
    for f in files:
        message = message.replace(str(f.path), f.name).replace(str(f.path.parent), "the upload")
    return message


def _vendor(node_modules: Path) -> list[Mount]:
    return [Mount(f"/vendor/{name}", StaticFiles(directory=node_modules / sub, check_dir=False))
            for name, sub in VENDOR.items()]


def _error_handlers(ex: Explorer) -> dict[Any, Callable[..., Any]]:
    def respond(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        return ex.page(request, "error.html", {"status": status, "message": message}, status=status)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            raise exc
        return respond(request, exc.status_code, exc.detail)

    async def too_large(request: Request, exc: Exception) -> Response:
        return respond(request, 413, str(exc))

    async def bad_upload(request: Request, exc: Exception) -> Response:
        return respond(request, 400, str(exc))

    async def crashed(request: Request, exc: Exception) -> Response:
        # No details to the client. Starlette re-raises it after this response, so the
        # server's log has the traceback for the operator.
        log.error("request %s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        headers = dict(SECURITY_HEADERS)  # this response is sent outside the middleware
        return PlainTextResponse("500 internal error: the explorer failed on this request; its log says why.",
                                 status_code=500, headers=headers)

    return {HTTPException: http_error, UploadTooLarge: too_large, BadUpload: bad_upload, Exception: crashed}


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: chain data is hostile
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return Jinja2Templates(env=env)


def create_app(
    connect: Callable[[], sqlite3.Connection],
    *,
    open_ledger: Callable[[], AuditLedger] | None = None,
    node_modules: Path = NODE_MODULES,
    max_upload: int = MAX_UPLOAD_BYTES,
) -> Starlette:
    """The explorer app over the index that `connect` opens (read-only, one per call).

    `open_ledger` gives a chain handle for verifying a custodian's proof folder (it
    re-reads the chain); without it that endpoint answers 503.
    """
    ex = Explorer(connect, open_ledger, _templates(), max_upload)
    missing = [name for name, sub in VENDOR.items() if not (node_modules / sub).is_dir()]
    if missing:
        log.warning("charts and the token hash need npm packages %s: run `npm ci` (make install)", ", ".join(missing))
    return Starlette(
        routes=[*_routes(ex), *_vendor(node_modules)],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers=_error_handlers(ex),
    )
