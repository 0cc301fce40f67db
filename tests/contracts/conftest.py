"""The chain the binding's tests run on: eth-tester in-process, and, for the modules
that set `CHAIN_BACKENDS = BOTH_BACKENDS`, also a Hardhat network node (EDR, a second
EVM implementation: devnet/hardhat.py), marked slow since it is a process.

AuditLedger is deployed once per module; each test runs on a snapshot that is reverted
afterwards (eth-tester's snapshots, Hardhat's evm_snapshot / evm_revert), so tests do
not see each other. One Hardhat node serves the whole session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint

from contracts.ledger import AuditLedger, new_private_key
from devnet.anvil import free_port
from devnet.hardhat import HardhatProcess, running_hardhat

ETH_TESTER = "eth-tester"
HARDHAT = "hardhat"
BOTH_BACKENDS = (ETH_TESTER, pytest.param(HARDHAT, marks=pytest.mark.slow))
"""What a module sets as `CHAIN_BACKENDS` to run its chain tests on Hardhat too."""


@dataclass(frozen=True)
class Chain:
    w3: Web3
    admin_key: str
    address: str
    backend: str
    rpc_url: str | None = None
    """Hardhat's URL: handles then connect as a peer does (None: eth-tester in-process)."""
    tester: Any = None
    """eth-tester's EthereumTester (None on Hardhat)."""

    def handle(self, private_key: str | None = None) -> AuditLedger:
        """A fresh binding handle (fresh nonce cache) on the deployed contract."""
        if self.rpc_url is not None:
            return AuditLedger(self.rpc_url, self.address, private_key)
        return AuditLedger.from_web3(self.w3, self.address, private_key)

    def funded_key(self, wei: int = 10**18) -> str:
        """A new key funded from the chain's first unlocked dev account."""
        return _funded_key(self.w3, wei)

    def snapshot(self) -> object:
        if self.tester is not None:
            return self.tester.take_snapshot()
        return self._rpc("evm_snapshot", [])

    def revert(self, snapshot: object) -> None:
        if self.tester is not None:
            self.tester.revert_to_snapshot(snapshot)
        elif self._rpc("evm_revert", [snapshot]) is not True:
            raise RuntimeError(f"hardhat did not revert to snapshot {snapshot}")

    def _rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    backends = getattr(metafunc.module, "CHAIN_BACKENDS", None)
    if backends is not None and "chain_backend" in metafunc.fixturenames:
        metafunc.parametrize("chain_backend", backends, indirect=True, scope="module")


@pytest.fixture(scope="module")
def chain_backend(request: pytest.FixtureRequest) -> str:
    """eth-tester unless the module asks for more (`CHAIN_BACKENDS`)."""
    return str(getattr(request, "param", ETH_TESTER))


@pytest.fixture(scope="session")
def hardhat_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HardhatProcess]:
    """One Hardhat network node for the session (started by the first test needing it)."""
    log_file = tmp_path_factory.mktemp("hardhat") / "hardhat.log"
    with running_hardhat(free_port(), log_file) as process:
        yield process


def _funded_key(w3: Web3, wei: int) -> str:
    key = new_private_key()
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": Account.from_key(key).address, "value": wei})
    w3.eth.wait_for_transaction_receipt(tx)
    return key


def _deploy(w3: Web3, backend: str, rpc_url: str | None = None, tester: Any = None) -> Chain:
    admin_key = _funded_key(w3, 10**20)
    ledger = AuditLedger.deploy_with_web3(w3, admin_key)
    return Chain(w3=w3, admin_key=admin_key, address=ledger.address, backend=backend,
                 rpc_url=rpc_url, tester=tester)


@pytest.fixture(scope="module")
def chain_module(chain_backend: str, request: pytest.FixtureRequest) -> Chain:
    if chain_backend == HARDHAT:
        node: HardhatProcess = request.getfixturevalue("hardhat_node")
        return _deploy(Web3(Web3.HTTPProvider(node.rpc_url)), HARDHAT, rpc_url=node.rpc_url)
    provider = EthereumTesterProvider()
    return _deploy(Web3(provider), ETH_TESTER, tester=provider.ethereum_tester)


@pytest.fixture
def chain(chain_module: Chain) -> Iterator[Chain]:
    snapshot = chain_module.snapshot()
    yield chain_module
    chain_module.revert(snapshot)


@pytest.fixture
def admin(chain: Chain) -> AuditLedger:
    return chain.handle(chain.admin_key)


SAMPLE_CAP = 1_000
"""The sample cap of `registered_node`'s nodes unless a test asks for another."""


@pytest.fixture
def registered_node(chain: Chain, admin: AuditLedger) -> Callable[..., AuditLedger]:
    """Factory: a funded node registered with `sample_cap` and `epsilon_budget` (the
    binding's default unless given), and its handle."""

    def make(sample_cap: int = SAMPLE_CAP, epsilon_budget: float | None = None) -> AuditLedger:
        key = chain.funded_key()
        handle = chain.handle(key)
        peer_id = b"\x00\x25peer-" + bytes.fromhex(key[2:6])
        if epsilon_budget is None:
            admin.register_node(handle.account or "", peer_id, sample_cap)
        else:
            admin.register_node(handle.account or "", peer_id, sample_cap, epsilon_budget=epsilon_budget)
        return handle

    return make
