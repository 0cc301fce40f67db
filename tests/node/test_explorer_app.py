"""The explorer's web app over a real index of a real chain (eth-tester in-process):
pages and their /api/ mirrors, escaping of hostile chain data, the security headers,
400/404 (never 500) for bad requests, proof uploads (real proofs from node.audit, a
413 for big bodies), and the app served by Hypercorn on trio with the sync loop
picking up a new record while it serves.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import logging

import httpx
import pytest
import trio
from eth_hash.auto import keccak
from starlette.testclient import TestClient

from contracts.errors import ChainUnavailable
from contracts.ledger import AuditLedger
from node.audit import prove_withdrawal
from node.explorer import queries
from node.explorer.app import CSP, create_app
from node.explorer.index import Index, IndexStatus
from node.explorer.server import ServeOptions, keep_synced, run_explorer
from node.proofs import dumps, prove
from tests.contracts.conftest import Chain, admin, chain, chain_backend, chain_module, registered_node  # noqa: F401
from tests.node.audit_scenario import SUBJECT, Custodian, commitment, history

HOSTILE = "<img src=x onerror=alert(1)><script>window.__xss=1</script>\"'&"
NASTY = ["0x", "zz", "0x" + "g" * 64, "<script>alert(1)</script>", "%00", "0x" + "a" * 63, "1" * 300,
         "'; DROP TABLE nodes; --", "../../etc/passwd", "0x" + "A" * 40 + "00", "\u202e\u0000"]


def h(value: bytes) -> str:
    return "0x" + value.hex()


@dataclass(frozen=True)
class World:
    """A custodian's history with a token withdrawal, its proofs, a hostile node, the index."""

    client: TestClient
    index: Index
    chain: Chain
    custodian: Custodian
    hostile: AuditLedger
    proofs: Path
    withdrawal_block: int

    def db(self) -> sqlite3.Connection:
        return self.index.connect()


@pytest.fixture
def world(chain: Chain, admin: AuditLedger, registered_node: Callable[..., AuditLedger],  # noqa: F811
          tmp_path: Path) -> Iterator[World]:
    custodian = Custodian(registered_node(epsilon_budget=2.0), tmp_path / "checkpoint")
    withdrawal_block = history(custodian, admin)
    proofs = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, proofs)
    hostile = chain.handle(chain.funded_key())
    admin.register_node(hostile.account or "", HOSTILE.encode(), 50)
    hostile.record_contribution(keccak(b"hostile delta"), keccak(b"<b>base</b>"), 1, 5, keccak(b"root"), 0.0)
    index = Index(tmp_path / "explorer.sqlite", chain.handle())
    index.sync()
    app = create_app(index.connect, open_ledger=chain.handle)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield World(client, index, chain, custodian, hostile, proofs, withdrawal_block)
    index.close()


class _Page(HTMLParser):
    """What a page is made of: its scripts, styles, test hooks and text."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_style = False
        self.testids: list[str] = []
        self.inputs: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        if tag == "style" or "style" in a or any(k.startswith("on") for k in a):
            self.inline_style = True
        if a.get("data-testid"):
            self.testids.append(str(a["data-testid"]))
        if tag == "input":
            self.inputs.append(a)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def pages(w: World) -> list[str]:
    c = w.custodian
    return ["/", f"/node/{c.address}", f"/node/{c.address}?sort=epsilon&order=asc&per_page=2&page=2",
            f"/node/{w.hostile.account}", f"/contribution/{h(c.recorded[4])}",
            f"/contribution/{h(keccak(b'hostile delta'))}", f"/subject/{h(SUBJECT)}",
            f"/subject/{h(keccak(b'never withdrawn'))}", "/patient"]


# --------------------------------------------------------------------- pages


def test_overview_shows_nodes_budgets_status_and_withdrawals(world: World) -> None:
    # Execute
    response = world.client.get("/")

    # Assert
    assert response.status_code == 200
    page = parse(response.text)
    assert page.testids.count("node-row") == 2
    assert page.testids.count("budget-bar") == 2  # the custodian's budget, and the default one
    for hook in ("head-block", "index-lag", "contributions-total", "live-status", "per-round-chart",
                 "withdrawal-timeline", "search-input"):
        assert hook in page.testids, hook
    status = world.index.status()
    assert f'data-testid="head-block">{status.head_block}<' in response.text
    assert 'data-testid="contributions-total">7<' in response.text
    assert f'data-seq="{status.events}"' in response.text
    assert page.testids.count("contribution-row") == 7  # the latest ones
    assert h(SUBJECT) in response.text and f"block {world.withdrawal_block}" in response.text


def test_hostile_chain_strings_are_escaped_on_every_page(world: World) -> None:
    for path in pages(world):
        response = world.client.get(path)

        assert response.status_code == 200, path
        assert "<img src=x" not in response.text and "<script>window" not in response.text, path
        assert "<b>base" not in response.text, path
    overview = world.client.get("/").text
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;window.__xss=1&lt;/script&gt;" in overview
    assert HOSTILE in "".join(parse(overview).text)  # shown as text, as it was registered


def test_pages_have_no_inline_script_or_style_and_every_response_is_locked_down(world: World) -> None:
    urls = [*pages(world), "/static/app.js", "/static/style.css", "/vendor/uplot/uPlot.iife.min.js",
            "/vendor/js-sha3/sha3.min.js", "/api/overview", "/nope", "/node/zz", "/api/since?seq=x"]
    for url in urls:
        response = world.client.get(url)

        assert response.headers["content-security-policy"] == CSP, url
        assert response.headers["x-content-type-options"] == "nosniff", url
        assert response.headers["referrer-policy"] == "no-referrer", url
        if response.headers["content-type"].startswith("text/html"):
            page = parse(response.text)
            assert all(s.get("src") for s in page.scripts), url
            assert not page.inline_style, url
    assert world.client.get("/vendor/uplot/uPlot.iife.min.js").status_code == 200
    assert "keccak" in world.client.get("/vendor/js-sha3/sha3.min.js").text


def test_api_mirrors_each_page_from_the_same_query(world: World) -> None:
    c = world.custodian
    db = world.db()
    try:
        expected = {
            "/api/overview": queries.overview(db),
            f"/api/node/{c.address}": queries.node_page(db, c.address),
            f"/api/contribution/{h(c.recorded[2])}": queries.contribution(db, h(c.recorded[2])),
            f"/api/subject/{h(SUBJECT)}": queries.subject(db, h(SUBJECT)),
            "/api/since?seq=3": queries.since(db, 3),
        }
    finally:
        db.close()
    for url, data in expected.items():
        response = world.client.get(url)

        assert response.status_code == 200, url
        assert response.json() == json.loads(json.dumps(data)), url


def test_node_page_sorts_pages_and_shows_histories(world: World) -> None:
    c = world.custodian

    response = world.client.get(f"/node/{c.address}?sort=round&order=asc&per_page=4")

    assert response.status_code == 200
    rows = re.findall(r'data-testid="contribution-row">\s*<td class="num">\d+</td>\s*<td class="num">(\d+)</td>', response.text)
    assert rows == ["1", "2", "3", "4"]
    assert "page 1 of 2" in response.text and "?page=2&amp;sort=round&amp;order=asc&amp;per_page=4" in response.text
    assert 'data-live-rows="no"' in response.text  # ascending: new rows do not go on top
    assert "epsilon-chart" in response.text and "Privacy budget history" in response.text


def test_contribution_and_subject_pages(world: World) -> None:
    c = world.custodian

    contribution = world.client.get(f"/contribution/{h(c.recorded[4])}")
    withdrawn = world.client.get(f"/subject/{h(SUBJECT)}")
    never = world.client.get(f"/subject/{h(keccak(b'never withdrawn'))}")

    assert contribution.status_code == 200
    for value in (h(c.recorded[4]), c.address.lower(), h(keccak(b"base"))):
        assert value in contribution.text
    assert "verify-form" in contribution.text and "verify-result" in contribution.text
    assert "Consent withdrawn" in withdrawn.text and "with the patient's consent token" in withdrawn.text
    assert "the chain does not say" in withdrawn.text  # a token names no custodian
    assert "Not withdrawn" in never.text


def test_patient_page_never_submits_the_token(world: World) -> None:
    page = parse(world.client.get("/patient").text)

    token = next(i for i in page.inputs if i.get("data-testid") == "token-input")
    assert "name" not in token  # a nameless input is never part of a submitted form
    assert [s["src"] for s in page.scripts] == ["/vendor/js-sha3/sha3.min.js", "/static/app.js"]
    found = world.client.get(f"/patient?commitment=%20{h(SUBJECT).upper().replace('0X', '0x')}%20")
    assert found.status_code == 303 and found.headers["location"] == f"/subject/{h(SUBJECT)}"
    assert world.client.get("/patient?commitment=0x1234").status_code == 400


def test_search_goes_to_the_page_of_what_it_names(world: World) -> None:
    c = world.custodian
    cases = {
        h(c.recorded[1]): f"/contribution/{h(c.recorded[1])}",
        c.address: f"/node/{c.address.lower()}",
        h(SUBJECT): f"/subject/{h(SUBJECT)}",
        HOSTILE: f"/node/{(world.hostile.account or '').lower()}",
    }
    for text, target in cases.items():
        response = world.client.get("/search", params={"q": text})

        assert (response.status_code, response.headers.get("location")) == (303, target), text
        assert world.client.get("/api/search", params={"q": text}).json()["path"] == target
    missing = world.client.get("/search", params={"q": h(keccak(b"nothing"))})
    assert missing.status_code == 404 and "Nothing found" in missing.text


# ------------------------------------------------------------ bad requests


def test_bad_parameters_are_400_and_unknown_names_404(world: World) -> None:
    c = world.custodian
    expected = {
        "/node/0xzz": 400, "/api/node/not-an-address": 400, f"/node/{c.address}?page=abc": 400,
        f"/node/{c.address}?page=0": 400, f"/node/{c.address}?per_page=100000": 400,
        f"/node/{c.address}?sort=evil": 400, f"/api/node/{c.address}?order=sideways": 400,
        "/contribution/0x1234": 400, "/api/subject/xyz": 400, "/api/since?seq=-1": 400, "/search?q=": 400,
        "/node/0x" + "ab" * 20: 404, "/api/contribution/" + h(keccak(b"unknown")): 404,
        "/nope": 404, "/static/../app.py": 404, "/vendor/uplot/../../package.json": 404,
    }
    for url, status in expected.items():
        response = world.client.get(url)

        assert response.status_code == status, (url, response.text[:200])
        if url.startswith("/api/"):
            assert response.json()["status"] == status and response.json()["error"]
        else:
            assert "Traceback" not in response.text
    assert world.client.post("/").status_code == 405


def test_no_parameter_crashes_a_route(world: World) -> None:
    c = world.custodian
    for bad in NASTY:
        for template in ("/node/{}", "/api/contribution/{}", "/subject/{}", "/search?q={}",
                         "/api/since?seq={}", f"/node/{c.address}?sort={{}}", f"/node/{c.address}?page={{}}",
                         "/patient?commitment={}"):
            url = template.format(httpx.URL("", params={"x": bad}).query.decode()[2:])

            response = world.client.get(url)

            assert response.status_code in (200, 303, 400, 404), (url, response.status_code)


def test_a_crash_is_a_plain_500_without_details() -> None:
    def broken() -> sqlite3.Connection:
        raise sqlite3.OperationalError("secret internals: /var/lib/whatever")

    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        response = client.get("/")

    assert response.status_code == 500
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert response.headers["content-security-policy"] == CSP


# ------------------------------------------------------------- verification


def _post_proof(w: World, delta: bytes, content: bytes, name: str = "proof.json") -> httpx.Response:
    return w.client.post(f"/api/verify/contribution/{h(delta)}", files={"proof": (name, content, "application/json")})


def test_a_real_proof_verifies_and_a_tampered_one_does_not(world: World) -> None:
    c = world.custodian
    good = (world.proofs / "round-4-exclusion.json").read_bytes()
    tampered = json.loads(good)
    tampered["leaves"][0]["siblings"][0] = h(keccak(b"forged"))

    valid = _post_proof(world, c.recorded[4], good).json()
    forged = _post_proof(world, c.recorded[4], json.dumps(tampered).encode()).json()
    elsewhere = _post_proof(world, c.recorded[5], good).json()
    garbage = _post_proof(world, c.recorded[4], b"<script>alert(1)</script>").json()

    assert valid["ok"] and valid["kind"] == "exclusion" and "NOT used" in valid["result"]
    assert not forged["ok"] and "does not hold" in forged["result"]
    assert not elsewhere["ok"] and "not this one" in elsewhere["result"]
    assert not garbage["ok"] and "not a format-1 proof" in garbage["result"] and "/tmp" not in garbage["result"]


def test_an_inclusion_after_the_withdrawal_is_flagged_as_a_violation(world: World) -> None:
    # Prepare: the custodian uses the withdrawn subject again, and proves it (the truth)
    subjects = [SUBJECT, commitment(1), commitment(2)]
    delta = world.custodian.contribute(7, subjects)
    world.index.sync()
    proof = dumps(prove(subjects, SUBJECT, delta)).encode()

    verdict = _post_proof(world, delta, proof).json()

    assert verdict["ok"] and verdict["violation"] and verdict["withdrawal_block"] == world.withdrawal_block


def test_a_custodian_folder_verifies_and_a_missing_proof_is_named(world: World) -> None:
    files = sorted(world.proofs.iterdir())
    url = f"/api/verify/subject/{h(SUBJECT)}"

    complete = world.client.post(url, files=[("proofs", (f.name, f.read_bytes())) for f in files]).json()
    gap = [f for f in files if f.name != "round-5-exclusion.json"]
    missing = world.client.post(url, files=[("proofs", (f.name, f.read_bytes())) for f in gap]).json()
    wrong_subject = world.client.post(f"/api/verify/subject/{h(keccak(b'other'))}",
                                      files=[("proofs", (f.name, f.read_bytes())) for f in files])

    assert complete["ok"] and complete["missing"] == [] and complete["summary"].startswith("PASS")
    assert {p["file"] for p in complete["proofs"]} == {f.name for f in files if f.name != "index.json"}
    assert not missing["ok"]
    assert missing["missing"] == [{"delta_hash": h(world.custodian.recorded[5]), "round": 5,
                                   "block": world.custodian.blocks[5]}]
    assert wrong_subject.status_code == 400 and "not" in wrong_subject.json()["error"]


def test_uploads_are_bounded_and_checked(world: World) -> None:
    url = f"/api/verify/contribution/{h(world.custodian.recorded[4])}"
    big = b"x" * (10 * 1024 * 1024)

    declared = world.client.post(url, files={"proof": ("big.json", big)})
    streamed = world.client.post(url, content=iter([big[:1 << 20]] * 10),
                                 headers={"content-type": "multipart/form-data; boundary=xyz"})
    no_file = world.client.post(url, data={"other": "1"})
    not_multipart = world.client.post(url, content=b"{}", headers={"content-type": "application/json"})
    two = world.client.post(url, files=[("proof", ("a.json", b"{}")), ("proof", ("b.json", b"{}"))])

    assert declared.status_code == 413 and "5 MB" in declared.json()["error"]
    assert streamed.status_code == 413
    assert (no_file.status_code, not_multipart.status_code, two.status_code) == (400, 400, 400)


# ------------------------------------------------------------- served for real


async def test_served_by_hypercorn_while_the_index_follows_the_chain(
    chain: Chain, registered_node: Callable[..., AuditLedger], tmp_path: Path,  # noqa: F811
) -> None:
    # Prepare
    node = registered_node()
    node.record_contribution(keccak(b"first"), keccak(b"base"), 1, 10, keccak(b"root"), 0.0)
    index = Index(tmp_path / "explorer.sqlite", chain.handle())
    urls: list[str] = []
    synced = trio.Event()

    def get(path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(kwargs.pop("method", "GET"), urls[0] + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        await nursery.start(_serve, index, urls, synced)
        await synced.wait()
        seq = (await trio.to_thread.run_sync(get, "/api/overview")).json()["status"]["events"]

        # Execute: a new record while the explorer serves; a 10 MB upload over a socket
        await trio.to_thread.run_sync(
            lambda: node.record_contribution(keccak(b"second"), keccak(b"base"), 2, 10, keccak(b"root"), 0.0))
        news: list[dict] = []
        while not news:
            news = (await trio.to_thread.run_sync(get, f"/api/since?seq={seq}")).json()["contributions"]
            await trio.sleep(0.05)
        big = await trio.to_thread.run_sync(lambda: get(
            f"/api/verify/contribution/{h(keccak(b'first'))}", method="POST",
            files={"proof": ("big.json", b"x" * (10 * 1024 * 1024))}))
        home = await trio.to_thread.run_sync(get, "/")
        nursery.cancel_scope.cancel()
    index.close()

    # Assert
    assert urls[0].startswith("http://127.0.0.1:")
    assert [c["delta_hash"] for c in news] == [h(keccak(b"second"))]
    assert big.status_code == 413 and "over the limit" in big.json()["error"]
    assert home.status_code == 200 and home.headers["content-security-policy"] == CSP


async def _serve(index: Index, urls: list[str], synced: trio.Event,
                 task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    app = create_app(index.connect)
    ready = trio.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_explorer(index, app, ServeOptions(port=0, poll=0.1),
                                                on_ready=on_ready, on_sync=lambda s: synced.set()))
        await ready.wait()
        task_status.started()


async def test_the_sync_loop_logs_an_outage_once_and_resumes(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: a chain that is down for three syncs, then back
    class Flaky:
        calls = 0

        def sync(self, max_blocks: int | None = None) -> IndexStatus:
            self.calls += 1
            if self.calls <= 3:
                raise ChainUnavailable("connection refused")
            return IndexStatus(9, 9, 0, 1, "0x" + "00" * 20, "0x" + "00" * 32, 4, 0)

    flaky, synced = Flaky(), []
    caplog.set_level(logging.INFO, logger="medgossip.explorer")

    # Execute
    with trio.CancelScope() as scope:
        def seen(status: IndexStatus) -> None:
            synced.append(status)
            if len(synced) == 2:
                scope.cancel()

        await keep_synced(flaky, 0.5, seen)  # type: ignore[arg-type]

    # Assert
    messages = [r.getMessage() for r in caplog.records if r.name == "medgossip.explorer"]
    assert flaky.calls == 5 and len(synced) == 2
    assert sum("cannot sync the index" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1


# -------------------------------------------------------------------- the CLI


def test_the_command_refuses_bad_flags_in_one_line(tmp_path: Path) -> None:
    from tests.cli_helpers import call, one_clear_line

    one_clear_line(call("explorer", "--rpc", "http://127.0.0.1:1"), "--rpc and --contract go together")
    one_clear_line(call("explorer", "--devnet", str(tmp_path / "missing.json")), "not found")
    one_clear_line(call("explorer", "--rpc", "http://127.0.0.1:1", "--contract", "0x" + "ab" * 20,
                        "--db", str(tmp_path)), "is a folder")


def test_the_index_file_defaults_next_to_the_chain_file(tmp_path: Path) -> None:
    from node.cli._chain import ChainTarget
    from node.cli.explorer import default_db

    by_rpc = ChainTarget("http://127.0.0.1:8545", "0x" + "AB" * 20, None)
    chain_dir = tmp_path / "devnet"
    chain_dir.mkdir()

    assert default_db(tmp_path / "network.json", by_rpc) == tmp_path / "explorer.sqlite"
    assert default_db(chain_dir, by_rpc) == chain_dir / "explorer.sqlite"
    assert default_db(None, by_rpc) == Path("run/explorer") / f"0x{'ab' * 20}.sqlite"
