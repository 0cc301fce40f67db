"""What every handle shares and what needs no contract: the HTTP connection, the
contract interface derived once from the committed artifact, keys, the chain probe
and plain ether transfers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from eth_account import Account
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import RPCEndpoint

from contracts import _args
from contracts._sender import TransactionSender, wait_for_receipt
from contracts._translate import Boundary, CustomErrors
from contracts.compile import load_artifact
from contracts.errors import ChainUnavailable
from contracts.events import EventDecoder
from contracts.records import TxResult

__all__ = [
    "Interface",
    "account_address",
    "hex_str",
    "http_web3",
    "interface",
    "new_private_key",
    "probe_chain",
    "send_ether",
]


@dataclass(frozen=True)
class Interface:
    """What the committed artifact gives every handle, derived once per process."""

    abi: list[dict[str, Any]]
    bytecode: bytes
    errors: CustomErrors
    events: EventDecoder


@functools.lru_cache(maxsize=1)
def interface() -> Interface:
    artifact = load_artifact()
    return Interface(
        abi=artifact.abi,
        bytecode=bytes.fromhex(artifact.bytecode.removeprefix("0x")),
        errors=CustomErrors(artifact.abi),
        events=EventDecoder(artifact.abi),
    )


HTTP_CONNECTIONS = 16
"""Kept-alive connections to the chain per handle: at most this many calls at once
without opening another (the peer's chain threads: recorder, watcher, prefetch...)."""


def http_web3(rpc_url: str, timeout: float) -> Web3:
    """A Web3 over HTTP that does not retry: a stopped chain must fail fast.

    web3's validation asks eth_chainId around every call; the provider's own request
    cache answers it after the first time (measured: 3 round trips per view became 1).
    Every thread shares one HTTP session and its pool of kept-alive connections: web3
    otherwise keeps a session per thread, and a peer's worker threads come and go, each
    new one opening its own connection (a round trip more on a slow link).
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=HTTP_CONNECTIONS, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    provider = Web3.HTTPProvider(
        rpc_url,
        request_kwargs={"timeout": timeout},
        exception_retry_configuration=None,
        cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
        session=session,
    )
    return Web3(provider)


def probe_chain(rpc_url: str, timeout: float = 1.0) -> int:
    """The chain id at `rpc_url`; ChainUnavailable if nothing answers."""
    w3 = http_web3(rpc_url, timeout)
    try:
        return int(w3.eth.chain_id)
    except (requests.RequestException, OSError, ValueError, Web3RPCError) as exc:
        raise ChainUnavailable(f"no chain answers at {rpc_url}: {type(exc).__name__}") from exc


def send_ether(rpc_url: str, from_key: str | bytes, to_address: str, amount_wei: int) -> TxResult:
    """Transfer ether (e.g. fund a fresh node key from a devnet account) and wait."""
    w3 = http_web3(_args.rpc_url(rpc_url), 10.0)
    signer = _args.account(from_key)
    to = _args.address(to_address, "recipient")
    value = _args.uint(amount_wei, _args.UINT256_MAX, "amount")
    boundary = Boundary(interface().errors, rpc_url)
    tx_hash = TransactionSender(w3, signer, boundary).send(b"", to=to, gas=21_000, value=value)
    receipt = wait_for_receipt(w3, boundary, tx_hash, 60.0)
    return TxResult(hex_str(receipt["transactionHash"]), int(receipt["blockNumber"]), int(receipt["gasUsed"]))


def new_private_key() -> str:
    """A fresh secp256k1 private key as 0x-prefixed hex (from the OS CSPRNG)."""
    return "0x" + bytes(Account.create().key).hex()


def account_address(private_key: str | bytes) -> str:
    """The checksummed address of a private key (InvalidInput if malformed)."""
    return str(_args.account(private_key).address)


def hex_str(value: Any) -> str:
    """A transaction hash as web3 or the raw JSON gives it -> 0x-prefixed hex."""
    return value if isinstance(value, str) else "0x" + bytes(value).hex()
