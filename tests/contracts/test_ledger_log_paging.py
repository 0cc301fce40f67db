"""Log queries against servers that cap eth_getLogs, and from the deployment block.

A fake JSON-RPC chain refuses any range wider than N blocks, worded as a real server
words it; it is reached over real HTTP (the binding's raw fast path) and as an
in-process web3 provider (web3's own get_logs path). The deployment-block floor runs
on eth-tester with the real contract.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_hash.auto import keccak
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.providers.base import JSONBaseProvider

from contracts._connect import interface
from contracts._translate import Boundary, is_range_refusal
from contracts.errors import LedgerError, LogRangeRefused
from contracts.events import LogPaging, iter_logs
from contracts.ledger import AuditLedger
from tests.contracts.conftest import BOTH_BACKENDS, Chain

CHAIN_BACKENDS = BOTH_BACKENDS
"""The chain tests of this module run on eth-tester and on a Hardhat node."""

ADDRESS = Web3.to_checksum_address("0x" + "ab" * 20)
TOPIC = "0x" + "11" * 32

BESU = (-32005, "Requested range exceeds maximum range limit")


@dataclass
class FakeChain:
    """One log per block; eth_getLogs over more than `max_range` blocks is refused."""

    max_range: int
    refusal: tuple[int, str] = BESU
    asked: list[tuple[int, int, bool]] = field(default_factory=list)
    """(from, to, accepted) of every eth_getLogs, in order."""

    def answer(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_chainId":
            return {"result": "0x539"}
        if method != "eth_getLogs":
            return {"error": {"code": -32601, "message": f"method {method} not found"}}
        start, stop = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        accepted = stop - start + 1 <= self.max_range
        self.asked.append((start, stop, accepted))
        if not accepted:
            code, message = self.refusal
            return {"error": {"code": code, "message": message}}
        return {"result": [_log(block) for block in range(start, stop + 1)]}

    @property
    def refused(self) -> list[tuple[int, int]]:
        return [(a, b) for a, b, ok in self.asked if not ok]


def _log(block: int) -> dict[str, Any]:
    return {
        "address": ADDRESS, "topics": [TOPIC], "data": "0x", "blockNumber": hex(block),
        "transactionHash": "0x" + block.to_bytes(32, "big").hex(), "transactionIndex": "0x0",
        "blockHash": "0x" + keccak(block.to_bytes(8, "big")).hex(), "logIndex": "0x0", "removed": False,
    }


class _InProcess(JSONBaseProvider):
    """A web3 provider answering from the fake chain (web3's formatted get_logs path)."""

    def __init__(self, chain: FakeChain) -> None:
        super().__init__()
        self.chain = chain

    def make_request(self, method: Any, params: Any) -> Any:
        return {"jsonrpc": "2.0", "id": 1, **self.chain.answer(str(method), list(params))}

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


def _http_server(chain: FakeChain) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"],
                               **chain.answer(request["method"], request["params"])}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(params=["http", "provider"])
def connect(request: pytest.FixtureRequest) -> Iterator[Callable[[FakeChain], Web3]]:
    servers: list[ThreadingHTTPServer] = []

    def make(chain: FakeChain) -> Web3:
        if request.param == "provider":
            return Web3(_InProcess(chain))
        server, url = _http_server(chain)
        servers.append(server)
        return Web3(Web3.HTTPProvider(url))

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def _query(w3: Web3, start: int, end: int, paging: LogPaging) -> list[int]:
    boundary = Boundary(interface().errors, "the fake chain")
    logs = iter_logs(w3, boundary.run, ADDRESS, [TOPIC, None], start, end, paging)
    return [int(entry["blockNumber"], 16) if isinstance(entry["blockNumber"], str) else int(entry["blockNumber"])
            for entry in logs]


def test_a_refused_range_is_halved_until_accepted_and_the_width_is_kept(connect: Callable[[FakeChain], Web3]) -> None:
    chain = FakeChain(max_range=100)
    w3 = connect(chain)
    paging = LogPaging(50_000)

    blocks = _query(w3, 10, 1_009, paging)

    assert blocks == list(range(10, 1_010))  # every block once, in order
    assert chain.refused == [(10, 1_009), (10, 509), (10, 259), (10, 134)]  # 1000 -> 500 -> 250 -> 125 -> 62
    assert all(b - a + 1 <= 100 for a, b, ok in chain.asked if ok)
    assert paging.blocks == 62
    chain.asked.clear()
    assert _query(w3, 5_000, 5_999, paging) == list(range(5_000, 6_000))
    assert chain.refused == []  # the next query starts at the width that works


def test_one_refused_block_is_an_error_not_a_loop(connect: Callable[[FakeChain], Web3]) -> None:
    chain = FakeChain(max_range=0)

    with pytest.raises(LogRangeRefused, match="refuses eth_getLogs over blocks 0..0"):
        _query(connect(chain), 0, 7, LogPaging(8))

    assert [b - a + 1 for a, b, _ in chain.asked] == [8, 4, 2, 1]


def test_other_errors_are_not_split(connect: Callable[[FakeChain], Web3]) -> None:
    chain = FakeChain(max_range=0, refusal=(-32000, "header not found"))

    with pytest.raises(LedgerError) as raised:
        _query(connect(chain), 0, 1_000, LogPaging(50_000))

    assert not isinstance(raised.value, LogRangeRefused)
    assert len(chain.asked) == 1


@pytest.mark.parametrize(
    ("code", "message"),
    [
        BESU,
        (-32005, "query returned more than 10000 results"),  # Infura, geth-style
        (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"),
        (-32000, "exceed maximum block range: 5000"),  # BSC
        (-32600, "block range is too wide"),  # Ankr
        (-32000, "eth_getLogs is limited to a 10,000 range"),  # QuickNode
        (-32000, "Block range limit exceeded"),  # Chainstack
        (-32005, "limit exceeded"),  # EIP-1474 wording
    ],
)
def test_servers_wordings_of_range_too_large(code: int, message: str) -> None:
    assert is_range_refusal(Web3RPCError(message, rpc_response={"error": {"code": code, "message": message}}))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32005, "daily request count exceeded, request rate limited"),
        (-32005, "project ID request rate exceeded"),
        (-32000, "too many requests"),
        (-32000, "header not found"),
        (3, "execution reverted"),
    ],
)
def test_rate_limits_and_other_errors_are_not_range_refusals(code: int, message: str) -> None:
    assert not is_range_refusal(Web3RPCError(message, rpc_response={"error": {"code": code, "message": message}}))
    assert not is_range_refusal(ConnectionError("range too large"))  # a transport failure is no answer


# --- the deployment block: no query reads below it ---------------------------------


def test_queries_start_at_the_deployment_block(chain: Chain, registered_node: Callable[..., AuditLedger]) -> None:
    early, late = registered_node(), registered_node()
    early.record_contribution(keccak(b"early"), keccak(b"g"), 1, 10, keccak(b"r"), 0.0)
    floor = chain.w3.eth.block_number + 1
    late.record_contribution(keccak(b"late"), keccak(b"g"), 1, 10, keccak(b"r"), 0.0)
    everything = chain.handle().contributions()

    reader = AuditLedger.from_web3(chain.w3, chain.address, deployment_block=floor)

    assert [c.delta_hash for c in everything] == [keccak(b"early"), keccak(b"late")]
    assert reader.deployment_block == floor
    assert [c.delta_hash for c in reader.contributions()] == [keccak(b"late")]
    assert [c.delta_hash for c in reader.contributions(from_block=0)] == [keccak(b"late")]
    assert reader.contributions(from_block=floor + 1) == []


def test_deploy_knows_its_deployment_block(chain: Chain) -> None:
    ledger = AuditLedger.deploy_with_web3(chain.w3, chain.admin_key)

    assert ledger.deployment is not None
    assert ledger.deployment_block == ledger.deployment.block_number > 0
