"""`medgossip explorer` in a real browser (Debian's Chromium driven by playwright), over
a real chain that is being written while the pages are open.

The world (explorer_harness.py): anvil + AuditLedger, two live recorder processes, a
custodian whose patient withdrew by token (`medgossip consent withdraw`) and its real
proofs (node.audit), a hostile node (a peer ID of HTML and script, records made to break
a page), and `medgossip explorer` as a subprocess on a free port.

1. the overview shows nodes and the per-round chart, and new contributions arrive on
   the open page without a reload;
2. a contribution link leads to its page, where a real proof verifies inline and a
   tampered one (or one of another contribution) does not;
3. the patient page hashes the token in the browser (checked against Python's
   commitment_of), shows the withdrawal, verifies the custodian's proof folder (and names
   a missing proof), and no request carries the token;
4. the hostile node's pages run nothing and show its text escaped;
5. every page's screenshot is saved under test-output/explorer/ (repo root) and is a
   readable, non-blank PNG.

Without a browser: the security headers, a 10 MB upload (413, declared or streamed),
and bad parameters (400/404, never a 500 or a traceback).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import select
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from eth_hash.auto import keccak

from devnet import stop_devnet
from node.data.consent import commitment_of
from tests.integration.explorer_harness import (
    CHROMIUM,
    HOSTILE_DELTA,
    SCREENSHOTS,
    Hostile,
    World,
    build_custodian,
    build_hostile,
    hexh,
    start_chain,
    start_explorer,
    start_recorder,
    stop,
    wait_for,
)

pytestmark = pytest.mark.slow  # anvil, recorder processes, the explorer and a browser

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("explorer")
    devnet, devnet_file = start_chain(folder)
    processes = [start_recorder(devnet, i, folder / "recorders") for i in (1, 2)]
    try:
        custodian = build_custodian(devnet, devnet_file, folder / "custodian")
        explorer = start_explorer(devnet_file, folder / "explorer")
        processes.append(explorer.process)
        last = hexh(custodian.recorded[6])
        wait_for(lambda: explorer.alive() and _status(f"{explorer.url}/api/contribution/{last}") == 200, 30,
                 f"the explorer to index the custodian's round 6 ({last})\n{explorer.log_tail()}")
        yield World(devnet, devnet_file, custodian, (devnet.nodes[1].address, devnet.nodes[2].address), explorer)
    finally:
        for process in processes:
            stop(process)
        stop_devnet(folder / "devnet")


@pytest.fixture(scope="module")
def hostile(world: World) -> Callable[[], Hostile]:
    """The hostile node, registered on first call while the explorer runs (so, in file
    order, after the overview's screenshot, which the README shows, and while the XSS
    test has the overview open), once indexed."""
    built: list[Hostile] = []

    def get() -> Hostile:
        if not built:
            node = build_hostile(world.devnet)
            last = f"{world.url}/api/contribution/{hexh(node.delta_hashes[-1])}"
            wait_for(lambda: world.explorer.alive() and _status(last) == 200, 30,
                     f"the explorer to index the hostile node\n{world.explorer.log_tail()}")
            built.append(node)
        return built[0]

    return get


def registered_nodes(world: World) -> int:
    """How many nodes the chain has registered (the hostile one may be among them)."""
    from contracts.ledger import AuditLedger
    from contracts.records import NodeRegistered

    events = AuditLedger(world.devnet.rpc_url, world.devnet.contract).events()
    return len({e.node for e in events if isinstance(e, NodeRegistered)})


# --- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.skip(f"no {CHROMIUM} and not root to install it: sudo apt-get install chromium")
        pytest.fail(f"no {CHROMIUM}: `make install` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page and what it did that it must not: dialogs, script errors, CSP violations."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)

    def assert_clean(self, where: str) -> None:
        assert self.dialogs == [], f"{where}: a dialog fired: {self.dialogs}"
        assert self.errors == [], f"{where}: script errors: {self.errors}"
        assert self.csp == [], f"{where}: Content-Security-Policy violations: {self.csp}"
        assert self.page.evaluate("typeof window.__xss") == "undefined", f"{where}: injected script ran"


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    seen = Watched(page)

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            seen.csp.append(message.text)

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on("console", on_console)
    try:
        yield seen
    finally:
        context.close()


def shoot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under SCREENSHOTS and check it is a readable, non-blank PNG."""
    from PIL import Image, ImageStat

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.width >= 600 and image.height >= 300, (path, image.size)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 8, f"{path} has {len(colours or [])} colours: blank"
        assert max(ImageStat.Stat(rgb).stddev) > 5, f"{path} is nearly uniform: blank"
    return path


def number(page: Any, testid: str) -> int:
    """The integer a hook shows (thousands separators and words ignored)."""
    digits = re.sub(r"\D", "", page.get_by_test_id(testid).first.inner_text())
    assert digits, f"{testid} shows no number: {page.get_by_test_id(testid).first.inner_text()!r}"
    return int(digits)


def contribution_link(page: Any, delta_hash: str) -> Any:
    return page.locator(f'[data-testid="contribution-row"] a[href="/contribution/{delta_hash}"]').first


def node_row(page: Any, address: str) -> Any:
    return page.locator(f'[data-testid="node-row"][data-address="{address.lower()}"]')


def link_to(page_or_locator: Any, path: str) -> Any:
    """The links to `path` (hashes are shown shortened; the href has them whole)."""
    return page_or_locator.locator(f'a[href="{path}"]')


def submit_and_wait(page: Any, form: Any) -> Any:
    """Submit a verify form; the result box once it is no longer pending."""
    from playwright.sync_api import expect

    result = form.locator("xpath=..").get_by_test_id("verify-result")
    result.evaluate("box => box.removeAttribute('data-verdict')")  # so that the old verdict is not taken
    form.locator("button[type=submit]").first.click()
    expect(result).to_have_attribute("data-verdict", re.compile(r"^(valid|invalid|error)$"))
    return result


# --- 1. the overview, live ---------------------------------------------------------------


def test_overview_shows_the_network_and_new_contributions_without_a_reload(world: World, watched: Watched) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    page = watched.page
    page.goto(world.url + "/")
    nodes = registered_nodes(world)  # the custodian, two recorders (and the hostile node if it came first)
    expect(page.get_by_test_id("node-row")).to_have_count(nodes)
    for address in (world.custodian.address, *world.recorders):
        expect(node_row(page, address)).to_have_count(1)
    expect(page.get_by_test_id("budget-bar")).to_have_count(nodes)
    chart = page.get_by_test_id("per-round-chart")
    expect(chart.locator("canvas").first).to_be_visible()  # uPlot drew it (from /api/ data)
    timeline = page.get_by_test_id("withdrawal-timeline")
    expect(timeline.locator(f'a[href="/subject/{hexh(world.custodian.subject)}"]')).to_have_count(1)
    expect(page.get_by_test_id("index-lag")).to_be_visible()
    total, head = number(page, "contributions-total"), number(page, "head-block")
    rows = page.get_by_test_id("contribution-row").all_inner_texts()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.evaluate("window.__stillHere = true")  # a reload or navigation would drop it

    # the recorders keep recording: the open page must follow
    try:
        page.wait_for_function(
            """([total, head, rows]) => {
                const n = id => parseInt(document.querySelector(`[data-testid="${id}"]`).textContent.replace(/\\D/g, ''));
                const now = [...document.querySelectorAll('[data-testid="contribution-row"]')].map(r => r.innerText);
                return n('contributions-total') >= total + 2 && n('head-block') > head && now.some(r => !rows.includes(r));
            }""",
            arg=[total, head, rows], timeout=TIMEOUT_MS,
        )
    except PlaywrightTimeout as exc:
        raise AssertionError(
            f"the open overview did not follow the chain: contributions {total} -> {number(page, 'contributions-total')}, "
            f"head block {head} -> {number(page, 'head-block')}, live status "
            f"{page.get_by_test_id('live-status').inner_text()!r}\n{world.explorer.log_tail()}"
        ) from exc

    assert page.evaluate("window.__stillHere") is True and navigations == []
    expect(page.get_by_test_id("live-status")).to_be_visible()
    shoot(page, "overview")
    watched.assert_clean("overview")


# --- 2. a contribution, and a proof verified inline ---------------------------------------


def test_a_contribution_page_verifies_a_real_proof_and_refuses_a_tampered_one(
    world: World, watched: Watched, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page, custodian = watched.page, world.custodian
    delta = hexh(custodian.recorded[4])  # after the withdrawal: an exclusion proof
    node = custodian.address.lower()
    page.goto(world.url + "/")
    link_to(node_row(page, node), f"/node/{node}").first.click()
    expect(page).to_have_url(re.compile(f"/node/{node}$"))
    expect(page.get_by_test_id("contribution-row")).to_have_count(6)
    shoot(page, "node")
    contribution_link(page, delta).click()
    expect(page).to_have_url(re.compile(f"/contribution/{delta}$"))
    recorded = json.loads(custodian.proof_file(4).read_text())
    body = page.locator("body")
    for value in (delta, recorded["dataRoot"], "round 4"):
        expect(body).to_contain_text(value)
    expect(link_to(page, f"/node/{node}")).not_to_have_count(0)
    page_url = page.url

    def verify(path: Path) -> tuple[str, str]:
        form = page.get_by_test_id("verify-form")
        form.locator("input[type=file]").set_input_files(str(path))
        result = submit_and_wait(page, form)
        return str(result.get_attribute("data-verdict")), result.inner_text()

    verdict, text = verify(custodian.proof_file(4))
    assert verdict == "valid" and "Valid proof" in text and "holds" in text, text
    assert page.url == page_url  # inline, no navigation
    shoot(page, "contribution")

    tampered = json.loads(custodian.proof_file(4).read_text())
    leaf = tampered["leaves"][0]["commitment"]
    tampered["leaves"][0]["commitment"] = leaf[:-1] + ("0" if leaf[-1] != "0" else "1")
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    verdict, text = verify(tmp_path / "tampered.json")
    assert verdict == "invalid" and "Invalid proof" in text, text
    verdict, text = verify(custodian.proof_file(5))  # a good proof, of another contribution
    assert verdict == "invalid" and "not this one" in text, text
    watched.assert_clean("contribution page")


# --- 3. the patient ----------------------------------------------------------------------


def test_the_patient_page_hashes_the_token_in_the_browser_and_never_sends_it(
    world: World, watched: Watched, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page, custodian = watched.page, world.custodian
    token = custodian.token.hex()
    requests: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    page.goto(world.url + "/patient")
    field_ = page.get_by_test_id("token-input")
    assert field_.get_attribute("name") is None, "the token input must not be a form field"
    shoot(page, "patient")
    # the page's keccak256 against Python's commitment_of, on tokens in every accepted form
    tokens = [secrets.token_bytes(32) for _ in range(8)] + [bytes(32), b"\xff" * 32]
    for sample in tokens:
        for typed in (sample.hex(), "0x" + sample.hex(), f"  0X{sample.hex().upper()} "):
            assert page.evaluate("t => window.medgossipCommitmentOf(t)", typed) == hexh(commitment_of(sample)), typed
    assert page.evaluate("t => window.medgossipCommitmentOf(t)", "12" * 31) is None
    field_.fill(token)
    field_.press("Enter")

    page.wait_for_url(re.compile(f"/subject/{hexh(custodian.subject)}$"))  # keccak256 as in Python
    status = page.get_by_test_id("withdrawal-status")
    expect(status).to_contain_text(re.compile(r"withdrawn", re.I))
    expect(status).to_contain_text(str(custodian.withdrawal_block))
    expect(status).to_contain_text(re.compile(r"token", re.I))

    # the custodian's proof folder, uploaded whole: it covers every contribution after the withdrawal
    form = page.get_by_test_id("verify-form")
    form.locator("input[type=file]").first.set_input_files([str(p) for p in sorted(custodian.proofs.iterdir())])
    result = submit_and_wait(page, form)
    assert result.get_attribute("data-verdict") == "valid" and "PASS" in result.inner_text(), result.inner_text()
    shoot(page, "subject")
    partial = tmp_path / "partial"
    shutil.copytree(custodian.proofs, partial)
    (partial / custodian.proof_file(5).name).unlink()
    form.locator("input[type=file]").first.set_input_files([str(p) for p in sorted(partial.iterdir())])
    result = submit_and_wait(page, form)
    assert result.get_attribute("data-verdict") == "invalid" and "FAIL" in result.inner_text(), result.inner_text()
    expect(link_to(result, f"/contribution/{hexh(custodian.recorded[5])}")).to_have_count(1)  # the missing one, named


    # another token, typed as people do (0X, upper case, spaces): the same hash as Python's
    other = secrets.token_bytes(32)
    page.goto(world.url + "/patient")
    page.get_by_test_id("token-input").fill(f"  0X{other.hex().upper()} ")
    page.get_by_test_id("token-input").press("Enter")
    page.wait_for_url(re.compile(f"/subject/{hexh(commitment_of(other))}$"))
    expect(page.get_by_test_id("withdrawal-status")).to_contain_text(re.compile(r"not withdrawn", re.I))

    secrets_ = {token, token.upper(), other.hex(), other.hex().upper()}
    assert requests, "no request recorded"
    for request in requests:
        carried = [request.url, request.post_data or "", *request.all_headers().values()]
        for text in carried:
            leaked = [s for s in secrets_ if s in text or s in urllib.parse.unquote(text)]
            assert not leaked, f"{request.method} {request.url} carries a consent token"
    watched.assert_clean("patient page")


def test_search_goes_to_what_it_names(world: World, watched: Watched) -> None:
    import base58
    from playwright.sync_api import expect

    custodian, page = world.custodian, watched.page
    delta = hexh(custodian.recorded[2])
    tx = json.loads(_fetch(f"{world.url}/api/contribution/{delta}")[2])["tx_hash"]
    recorder = world.devnet.nodes[1]
    targets = {
        delta: f"/contribution/{delta}",
        delta[2:].upper(): f"/contribution/{delta}",
        tx: f"/contribution/{delta}",
        custodian.address: f"/node/{custodian.address.lower()}",
        base58.b58encode(recorder.peer_id).decode(): f"/node/{recorder.address.lower()}",
        hexh(custodian.subject): f"/subject/{hexh(custodian.subject)}",
    }
    page.goto(world.url + "/")
    for query, path in targets.items():
        page.get_by_test_id("search-input").fill(query)
        page.get_by_test_id("search-input").press("Enter")
        expect(page).to_have_url(world.url + path)
    watched.assert_clean("search")


# --- without a browser: headers, uploads, bad parameters ----------------------------------


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def _fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), dict(response.headers), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), dict(exc.headers), exc.read().decode(errors="replace")


class _Inline(HTMLParser):
    """Inline script or style, event-handler attributes, and anything loaded from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self._in_script = tag == "script" and "src" not in named
        if tag == "style":
            self.found.append("<style>")
        for key, value in attrs:
            if key.startswith("on") or key == "style":
                self.found.append(f"<{tag} {key}=...>")
            if key in ("src", "href", "action") and value and re.match(r"^(\w+:)?//|^javascript:", value, re.I):
                self.found.append(f"<{tag} {key}={value}>")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("inline <script>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def test_every_response_carries_the_security_headers_and_pages_have_no_inline_code(world: World) -> None:
    custodian = world.custodian
    html_pages = ["/", f"/node/{custodian.address}", f"/contribution/{hexh(custodian.recorded[4])}",
                  f"/subject/{hexh(custodian.subject)}", "/patient", "/node/nothex", "/no/such/page"]
    others = [f"/api/node/{custodian.address}", f"/api/contribution/{hexh(custodian.recorded[4])}", "/api/since?seq=0"]
    for path in html_pages + others:
        status, headers, body = _fetch(world.url + path)
        assert status != 500, (path, body[:300])
        lower = {k.lower(): v for k, v in headers.items()}
        assert lower.get("content-security-policy") == CSP, (path, lower.get("content-security-policy"))
        assert lower.get("x-content-type-options") == "nosniff", path
        assert lower.get("referrer-policy") == "no-referrer", path
        if path in html_pages:
            parser = _Inline()
            parser.feed(body)
            assert parser.found == [], f"{path}: {parser.found}"


def _post_stream(url: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[int, str]:
    """POST raw chunks, stopping as soon as the server answers; returns (status, body)."""
    parsed = urllib.parse.urlsplit(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=20) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered before the end of the body
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
                if b"\r\n\r\n" in received and len(received) > 4096:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    assert received, "the server closed the connection without an answer"
    response = http.client.HTTPResponse(_Replay(received))  # type: ignore[arg-type]
    response.begin()
    return response.status, received.split(b"\r\n\r\n", 1)[1].decode(errors="replace")


class _Replay:
    """A socket stand-in that replays received bytes for http.client's parser."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> Any:
        import io

        return io.BytesIO(self._data)


def test_a_10_mb_upload_gets_a_clear_413_and_the_explorer_keeps_serving(world: World) -> None:
    boundary = "medgossip-upload-boundary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.json\"\r\n"
            "Content-Type: application/json\r\n\r\n").encode()
    body_size = 10 * 1024 * 1024
    chunk = b"0" * 65536
    path = f"/api/verify/contribution/{hexh(world.custodian.recorded[4])}"
    content_type = f"multipart/form-data; boundary={boundary}"

    def body() -> Iterator[bytes]:
        yield part
        for _ in range(body_size // len(chunk)):
            yield chunk

    declared, text = _post_stream(world.url, path, {"Content-Type": content_type,
                                                    "Content-Length": str(len(part) + body_size)}, body())
    assert declared == 413 and "limit" in text.lower(), (declared, text[:300])

    def chunked() -> Iterator[bytes]:
        for piece in body():
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        yield b"0\r\n\r\n"

    streamed, text = _post_stream(world.url, path, {"Content-Type": content_type,
                                                    "Transfer-Encoding": "chunked"}, chunked())
    assert streamed == 413 and "limit" in text.lower(), (streamed, text[:300])
    subject_path = f"/api/verify/subject/{hexh(world.custodian.subject)}"
    again, text = _post_stream(world.url, subject_path, {"Content-Type": content_type,
                                                         "Content-Length": str(len(part) + body_size)}, body())
    assert again == 413, (again, text[:300])
    assert _status(world.url + "/") == 200


def test_bad_parameters_get_400_or_404_never_a_500(world: World) -> None:
    node = world.custodian.address
    zero32, unknown32 = "0x" + "00" * 32, hexh(keccak(b"nothing recorded this"))
    expected = {
        "/node/nothex": {400},
        "/node/0x1234": {400},
        "/node/0x" + "00" * 20: {404},
        f"/node/{node}?page=abc": {400},
        f"/node/{node}?page=-1": {400},
        f"/node/{node}?page=0": {400},
        f"/node/{node}?page=99999": {200, 404},
        f"/node/{node}?sort=evil": {400},
        f"/node/{node}?order=sideways": {400},
        f"/node/{node}?per_page=100000000": {200, 400},
        "/contribution/0xzz": {400},
        f"/contribution/{unknown32}": {404},
        f"/contribution/{zero32}x": {400},
        "/subject/0x12": {400},
        "/subject/" + urllib.parse.quote("<b>"): {400},
        "/search?q=": {400},
        "/search?q=" + "a" * 5000: {400},
        "/search?q=" + urllib.parse.quote("nothing by this name"): {404},
        "/api/since?seq=abc": {400},
        "/api/since?seq=-5": {400},
        "/api/since?seq=" + "9" * 400: {400, 200},
        "/api/node/nothex": {400},
        f"/api/contribution/{unknown32}": {404},
        "/api/subject/0xzz": {400},
        "/static/../../pyproject.toml": {404},
        "/static/%2e%2e/%2e%2e/pyproject.toml": {404},
        "/vendor/uplot/../../package.json": {404},
        "/no/such/page": {404},
    }
    for path, allowed in expected.items():
        status, headers, body = _fetch(world.url + path)
        assert status in allowed, f"{path}: {status} not in {sorted(allowed)}\n{body[:300]}"
        assert "Traceback" not in body and 'File "' not in body, f"{path}: a traceback\n{body[:500]}"
        if path.startswith("/api/") and status == 400:
            assert json.loads(body).get("error"), f"{path}: no error message in {body[:200]}"
    for path, allowed in {
        f"/api/verify/contribution/{unknown32}": {400, 404},
        f"/api/verify/contribution/{hexh(world.custodian.recorded[4])}": {400},
        "/api/verify/subject/0xzz": {400},
    }.items():
        status, headers, body = _fetch(world.url + path, method="POST")  # no body, no multipart
        assert status in allowed, f"POST {path}: {status}\n{body[:300]}"
        assert "Traceback" not in body
    assert _status(world.url + "/") == 200


# --- 4. hostile data (last: a node registered while the explorer runs) -------------------


def test_hostile_chain_data_is_shown_escaped_and_runs_nothing(
    world: World, hostile: Callable[[], Hostile], watched: Watched
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    page.goto(world.url + "/")  # open while the hostile records arrive: they come in through app.js
    node = hostile()
    expect(link_to(page.get_by_test_id("withdrawal-timeline"), f"/subject/{hexh(node.subject)}")).to_have_count(1)
    expect(contribution_link(page, hexh(HOSTILE_DELTA))).to_have_count(1)
    watched.assert_clean("overview, live")
    peer_text = node.peer_id.decode()
    pages = {
        "overview-hostile": "/",
        "node-hostile": f"/node/{node.address.lower()}",
        "contribution-hostile": f"/contribution/{hexh(HOSTILE_DELTA)}",
        "contribution-hostile-base": f"/contribution/{hexh(node.delta_hashes[0])}",
        "subject-hostile": f"/subject/{hexh(node.subject)}",
        "search-hostile": "/search?q=" + urllib.parse.quote(peer_text),
        "search-markup": "/search?q=" + urllib.parse.quote("<script>window.__xss=1</script>"),
        "bad-address": "/node/" + urllib.parse.quote("<img src=x onerror=alert(1)>"),
    }
    for name, path in pages.items():
        response = page.goto(world.url + path)
        assert response is not None and response.status in (200, 400, 404), (path, response and response.status)
        page.wait_for_load_state("networkidle")
        injected = page.evaluate(
            "document.querySelectorAll('img[src=\"x\"], svg[onload], iframe, script:not([src]):not([type=\"application/json\"])').length"
        )
        assert injected == 0, f"{path}: markup from the chain became elements"
        if name in ("overview-hostile", "node-hostile", "search-hostile"):
            expect(page.locator("body")).to_contain_text(peer_text)  # shown as text, escaped
        shoot(page, name)
        watched.assert_clean(path)
    page.get_by_test_id("search-input").fill(peer_text)  # its peer ID, searched for, leads to it
    page.get_by_test_id("search-input").press("Enter")
    expect(page).to_have_url(re.compile(f"/node/{node.address.lower()}$"))
    watched.assert_clean("search for the hostile peer ID")


def test_the_patient_page_takes_a_commitment_too(
    world: World, hostile: Callable[[], Hostile], watched: Watched
) -> None:
    from playwright.sync_api import expect

    page, node = watched.page, hostile()
    page.goto(world.url + "/patient")
    page.get_by_test_id("commitment-input").fill(hexh(node.subject))
    page.get_by_test_id("commitment-input").press("Enter")
    page.wait_for_url(re.compile(f"/subject/{hexh(node.subject)}$"))
    status = page.get_by_test_id("withdrawal-status")
    expect(status).to_contain_text(re.compile(r"withdrawn", re.I))
    expect(link_to(status, f"/node/{node.address.lower()}")).to_have_count(1)  # its custodian, named by the chain
    watched.assert_clean("subject page (custodian withdrawal)")
