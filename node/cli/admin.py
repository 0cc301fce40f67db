"""medgossip admin register-node|set-sample-cap|set-privacy-budget|revoke-node|set-genesis:
the consortium admin's actions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from contracts.units import DEFAULT_EPSILON_BUDGET
from node.cli._boundary import fail
from node.cli._chain import (
    ChainTarget,
    check_address,
    check_node_ref,
    open_ledger,
    out,
    print_json,
    read_key_file,
    resolve_node_address,
    resolve_target,
)
from node.cli._options import ContractAddress, DevnetFile, JsonOutput, RpcUrl

if TYPE_CHECKING:
    from contracts.ledger import AuditLedger

app = typer.Typer(
    no_args_is_help=True,
    help="Consortium admin: register and revoke hospital nodes, set their sample caps and privacy budgets, fix the genesis model.",
)

UINT32_MAX = 2**32 - 1

AdminKeyFile = Annotated[
    Optional[Path],
    typer.Option("--key", help="Admin key FILE (default: the devnet's admin key)."),
]


def _admin_key(target: ChainTarget, key: Path | None) -> str:
    if key is not None:
        return read_key_file(key)
    if target.devnet is None:
        fail("no admin key: pass --key FILE (or use a devnet.json)")
    return target.devnet.admin_key


def _admin_on_node(address: str, key: Path | None, target: ChainTarget) -> tuple[AuditLedger, str]:
    """The admin's ledger handle, and the node `address` names (an address or a dev node name)."""
    node_address = resolve_node_address(target, address)
    return open_ledger(target, _admin_key(target, key)), node_address


def _report(result: object, json_output: bool, what: str) -> None:
    from contracts.records import TxResult

    if not isinstance(result, TxResult):  # pragma: no cover - the binding returns TxResult
        fail("unexpected result")
    if json_output:
        print_json(result)
        return
    out.print(f"[green]{what}[/green]  tx {result.tx_hash}  block {result.block_number}  "
              f"gas {result.gas_used}")


@app.command("register-node")
def register_node(
    peer_id: str = typer.Option(..., "--peer-id", help="The node's libp2p peer ID (base58, or 0x-hex raw bytes)."),
    address: Optional[str] = typer.Option(None, "--address", help="The node's Ethereum address (default: derived from the peer ID); must match the peer ID's key."),
    sample_cap: int = typer.Option(..., "--sample-cap", min=1, max=UINT32_MAX, help="The most samples one contribution of this node may declare (the agreed size of its contribution, e.g. local steps x batch size)."),
    epsilon_budget: float = typer.Option(DEFAULT_EPSILON_BUDGET, "--epsilon-budget", min=0.0, help="The most differential-privacy epsilon all of this node's contributions may spend together (0: only records without DP)."),
    key: AdminKeyFile = None,
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Register a hospital node with its sample cap and privacy budget: its address and
    peer ID come from the same secp256k1 key, and this is checked before sending.

    Example: medgossip admin register-node --peer-id 16Uiu2HAm... --sample-cap 320 --epsilon-budget 8
    """
    from gossip.errors import InvalidIdentity
    from gossip.identity import eth_address_from_peer_id, peer_id_to_bytes

    try:
        raw = (bytes.fromhex(peer_id[2:]) if peer_id.startswith("0x")
               else peer_id_to_bytes(peer_id))
        derived = eth_address_from_peer_id(raw)
    except (InvalidIdentity, ValueError) as exc:
        fail(f"--peer-id: {exc}")
    if address is not None and check_address(address, "--address").lower() != derived.lower():
        fail(f"--address {address} does not match the peer ID, whose key is {derived}")
    target = resolve_target(devnet, rpc, contract)
    ledger = open_ledger(target, _admin_key(target, key))
    result = ledger.register_node(address or derived, raw, sample_cap, epsilon_budget=epsilon_budget)
    _report(result, json_output,
            f"registered {derived} (sample cap {sample_cap}, epsilon budget {epsilon_budget:g})")


@app.command("set-sample-cap")
def set_sample_cap(
    address: str = typer.Option(..., "--address", help="The node's address (or a dev node name such as node-1)."),
    cap: int = typer.Option(..., "--cap", min=1, max=UINT32_MAX, help="The new cap: the most samples one contribution may declare."),
    key: AdminKeyFile = None,
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Change an active node's sample cap; it bounds its future contributions.

    Example: medgossip admin set-sample-cap --address node-1 --cap 640
    """
    check_node_ref(address, "--address")  # arguments first, before any file or chain
    ledger, node_address = _admin_on_node(address, key, resolve_target(devnet, rpc, contract))
    result = ledger.set_sample_cap(node_address, cap)
    _report(result, json_output, f"sample cap of {node_address} set to {cap}")


@app.command("set-privacy-budget")
def set_privacy_budget(
    address: str = typer.Option(..., "--address", help="The node's address (or a dev node name such as node-1)."),
    epsilon: float = typer.Option(..., "--epsilon", min=0.0, help="The new budget: the most epsilon all the node's contributions may spend together."),
    key: AdminKeyFile = None,
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Change an active node's privacy budget; it bounds its future contributions. A
    budget below what the node has spent stops its further DP contributions.

    Example: medgossip admin set-privacy-budget --address node-1 --epsilon 4
    """
    check_node_ref(address, "--address")  # arguments first, before any file or chain
    ledger, node_address = _admin_on_node(address, key, resolve_target(devnet, rpc, contract))
    result = ledger.set_privacy_budget(node_address, epsilon)
    _report(result, json_output, f"privacy budget of {node_address} set to epsilon {epsilon:g}")


@app.command("revoke-node")
def revoke_node(
    address: str = typer.Option(..., "--address", help="The node's address (or a dev node name such as node-1)."),
    key: AdminKeyFile = None,
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Revoke a node: it can no longer record contributions nor withdraw consent."""
    check_node_ref(address, "--address")  # arguments first, before any file or chain
    ledger, node_address = _admin_on_node(address, key, resolve_target(devnet, rpc, contract))
    result = ledger.revoke_node(node_address)
    _report(result, json_output, f"revoked {node_address}")


@app.command("set-genesis")
def set_genesis(
    hash: str = typer.Option(..., "--hash", help="The genesis model hash (64 hex)."),
    key: AdminKeyFile = None,
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Fix the consortium's genesis model hash (once)."""
    from contracts.records import parse_bytes32

    model_hash = parse_bytes32(hash, "--hash")
    target = resolve_target(devnet, rpc, contract)
    ledger = open_ledger(target, _admin_key(target, key))
    result = ledger.set_genesis_model(model_hash)
    _report(result, json_output, "genesis model set")
