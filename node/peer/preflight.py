"""Checks against the chain before a peer starts, each ending the start with one line
that says who fixes what: this node is registered with this key, its account can pay
for a contribution, and the genesis model it builds is the one on chain.

Each blocks on JSON-RPC (called from `Peer.prepare`, before the event loop).
`config_genesis_hash` needs no chain and no data: `medgossip node genesis-hash` prints
it for the admin's `set-genesis`.
"""

from __future__ import annotations

from decimal import Decimal

from contracts.errors import InsufficientFunds
from contracts.ledger import AuditLedger
from contracts.records import NodeInfo
from gossip.identity import peer_id_to_bytes
from node.config import NodeConfig
from node.errors import PeerError

__all__ = ["check_funds", "check_genesis", "check_node", "check_registration", "config_genesis_hash"]

WEI_PER_ETHER = Decimal(10**18)
GENESIS_FIELDS = ("model", "image_size", "num_classes", "genesis_seed")
"""The NodeConfig fields the genesis model (and so its hash) is built from."""


def config_genesis_hash(config: NodeConfig) -> bytes:
    """The hash of the genesis model `config` builds (what `Learner.genesis_hash` is)."""
    from node.models import build_model, state_hash

    model = build_model(config.model, num_classes=config.num_classes, in_size=config.image_size,
                        seed=config.genesis_seed)
    return state_hash(model.state_dict())


def check_node(ledger: AuditLedger, address: str, peer_id: str) -> NodeInfo:
    """Registration, then funds: what a node learns before its data is even read."""
    info = check_registration(ledger, address, peer_id)
    check_funds(ledger, address)
    return info


def check_registration(ledger: AuditLedger, address: str, peer_id: str) -> NodeInfo:
    """This key's node, registered, active, with this peer ID."""
    info = ledger.node_info(address)
    if info is None or not info.active:
        raise PeerError(
            f"this node's address {address} is not an active registered node on the "
            "ledger: ask the consortium admin to run `medgossip admin register-node`"
        )
    if info.peer_id != peer_id_to_bytes(peer_id):
        raise PeerError("the peer ID registered on chain for this address is not this key's")
    return info


def check_funds(ledger: AuditLedger, address: str) -> None:
    """The account holds what one contribution costs at today's gas price (a chain
    whose gas price is 0 costs nothing); otherwise the peer would train a round and
    then fail to record it."""
    try:
        cost: int | None = ledger.contribution_cost()
    except InsufficientFunds:
        cost = None  # some chains refuse even to estimate for an account that cannot pay
    balance = ledger.balance(address)
    if cost is None or balance < cost:
        costs = "more than that" if cost is None else f"up to {_ether(cost)} ETH"
        raise PeerError(
            f"this node's account {address} holds {_ether(balance)} ETH and one contribution "
            f"costs {costs} in gas: ask the consortium admin to fund it "
            f"(`medgossip admin fund --address {address} --amount 1` on a dev chain)"
        )


def check_genesis(ledger: AuditLedger, genesis_hash: bytes, config: NodeConfig) -> None:
    """The chain's genesis model is set, and is the one this config builds."""
    ours = "0x" + genesis_hash.hex()
    on_chain = ledger.genesis_model()
    if on_chain is None:
        raise PeerError(
            "no genesis model on chain: the consortium admin runs "
            f"`medgossip admin set-genesis --hash {ours}` (this node's model; "
            "`medgossip node genesis-hash --config node.toml` prints it)"
        )
    if on_chain != genesis_hash:
        settings = " ".join(f"{name}={getattr(config, name)}" for name in GENESIS_FIELDS)
        raise PeerError(
            f"genesis model mismatch: the chain has 0x{on_chain.hex()}, this node builds {ours} "
            f"({settings}); the chain's is fixed for good, so fix this node: set its "
            f"{', '.join(GENESIS_FIELDS)} to the consortium's (check with "
            "`medgossip node genesis-hash --config node.toml`)"
        )


def _ether(wei: int) -> str:
    return f"{(Decimal(wei) / WEI_PER_ETHER).normalize():f}"
