"""eth-tester in-process chain with AuditLedger deployed once per module; each test
runs on a snapshot that is reverted afterwards, so tests do not see each other."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from web3 import EthereumTesterProvider, Web3

from contracts.ledger import AuditLedger, new_private_key


@dataclass(frozen=True)
class Chain:
    w3: Web3
    tester: object
    admin_key: str
    address: str

    def handle(self, private_key: str | None = None) -> AuditLedger:
        """A fresh binding handle (fresh nonce cache) on the deployed contract."""
        return AuditLedger.from_web3(self.w3, self.address, private_key)

    def funded_key(self, wei: int = 10**18) -> str:
        """A new key funded from an eth-tester account."""
        key = new_private_key()
        self.w3.eth.send_transaction(
            {"from": self.w3.eth.accounts[0], "to": Account.from_key(key).address, "value": wei}
        )
        return key


@pytest.fixture(scope="module")
def chain_module() -> Chain:
    provider = EthereumTesterProvider()
    w3 = Web3(provider)
    tester = provider.ethereum_tester
    admin_key = tester.backend.account_keys[1].to_hex()
    ledger = AuditLedger.deploy_with_web3(w3, admin_key)
    return Chain(w3=w3, tester=tester, admin_key=admin_key, address=ledger.address)


@pytest.fixture
def chain(chain_module: Chain) -> Iterator[Chain]:
    snapshot = chain_module.tester.take_snapshot()  # type: ignore[attr-defined]
    yield chain_module
    chain_module.tester.revert_to_snapshot(snapshot)  # type: ignore[attr-defined]


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
