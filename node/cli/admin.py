"""medgossip admin deploy|fund|register-node|set-sample-cap|set-privacy-budget|revoke-node|
set-genesis: the consortium admin's actions."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
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
    help="Consortium admin: deploy the ledger, fund and register hospital nodes (and revoke them), set their sample caps and privacy budgets, fix the genesis model.",
)

UINT32_MAX = 2**32 - 1
WEI_PER_ETHER = Decimal(10**18)

AdminKeyFile = Annotated[
    Optional[Path],
    typer.Option("--key", help="Admin key FILE (default: the devnet's admin key)."),
]


def _admin_key(target: ChainTarget, key: Path | None) -> str:
    if key is not None:
        return read_key_file(key)
    if target.devnet is None:
        fail("no admin key: pass --key FILE (a network.json holds no keys; a devnet.json does)")
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


@app.command("deploy")
def deploy(
    rpc: str = typer.Option(..., "--rpc", help="JSON-RPC URL of the chain to deploy to (geth, Besu, anvil, Hardhat, ...)."),
    key: Path = typer.Option(..., "--key", help="Admin key FILE: its account pays for the deployment and becomes the consortium admin."),
    out_file: Path = typer.Option(Path("network.json"), "--out", "-o", help="Where to write network.json (no keys: give it to every hospital)."),
    public_rpc: Optional[str] = typer.Option(None, "--public-rpc", help="RPC URL to write into network.json when the hospitals reach the chain by another URL than --rpc."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file (it names a contract hospitals may be using)."),
    json_output: JsonOutput = False,
) -> None:
    """Deploy AuditLedger to any EVM chain and write network.json (RPC URL, chain id,
    contract address, deployment block; no keys), the file hospitals pass to
    `node init --network` and chain commands take with --network.

    Example: medgossip admin deploy --rpc http://198.18.0.1:8545 --key admin.key --out network.json
    """
    from contracts.ledger import AuditLedger
    from contracts.network import NetworkInfo

    for flag, url in (("--rpc", rpc), ("--public-rpc", public_rpc)):
        if url is not None and not url.startswith(("http://", "https://")):
            fail(f"{flag} {url!r} is not an http(s) JSON-RPC URL (e.g. http://198.18.0.1:8545)")
    if out_file.is_dir():
        fail(f"--out {out_file} is a folder: give the path of the network.json to write")
    if out_file.exists() and not force:
        fail(f"--out {out_file} exists (a deployed contract's network file): choose another --out, "
             "or pass --force to replace it")
    admin_key = read_key_file(key)
    ledger = AuditLedger.deploy(rpc, admin_key)
    info = NetworkInfo(rpc_url=public_rpc or rpc, chain_id=ledger.chain_id, contract=ledger.address,
                       deployment_block=ledger.deployment_block)
    info.save(out_file, replace=force)
    if json_output:
        print_json({"network_file": str(out_file), "admin": ledger.account, **json.loads(info.to_json())})
        return
    out.print(f"[green]deployed AuditLedger[/green] at {info.contract}  (chain id {info.chain_id}, "
              f"block {info.deployment_block}, admin {ledger.account})")
    out.print(f"wrote {out_file} (no keys): give it to every hospital for `medgossip node init --network`")


@app.command("fund")
def fund(
    address: str = typer.Option(..., "--address", help="The account to fund: a node's address (or a dev node name such as node-1)."),
    amount: str = typer.Option(..., "--amount", help="Ether to send, e.g. 1 or 0.05."),
    key: Optional[Path] = typer.Option(None, "--key", help="Key FILE of the paying account (default: the devnet's admin key)."),
    json_output: JsonOutput = False,
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
) -> None:
    """Send ether to an account so that it can pay for gas: a new node's account,
    made by `node init`, holds none. For dev and consortium chains where the admin
    holds ether to hand out.

    Example: medgossip admin fund --address 0x3f...e1 --amount 1 --network network.json --key admin.key
    """
    from contracts.ledger import send_ether

    check_node_ref(address, "--address")  # arguments first, before any file or chain
    wei = _ether_to_wei(amount)
    target = resolve_target(devnet, rpc, contract)
    node_address = resolve_node_address(target, address)
    payer = _admin_key(target, key)
    result = send_ether(target.rpc_url, payer, node_address, wei)
    balance = open_ledger(target).balance(node_address)
    if json_output:
        print_json({"tx_hash": result.tx_hash, "block_number": result.block_number, "to": node_address,
                    "amount_wei": wei, "balance_wei": balance})
        return
    out.print(f"[green]sent {amount} ETH to {node_address}[/green]  tx {result.tx_hash}  "
              f"block {result.block_number}  (balance now {Decimal(balance) / WEI_PER_ETHER:f} ETH)")


def _ether_to_wei(amount: str) -> int:
    """"1", "0.05", "1e-3" ether -> wei, exactly (at most 18 decimals)."""
    try:
        ether = Decimal(amount.strip())
    except InvalidOperation:
        fail(f"--amount {amount!r} is not a number of ether (e.g. 1 or 0.05)")
    wei = ether * WEI_PER_ETHER
    if not ether.is_finite() or ether <= 0 or wei != wei.to_integral_value():
        fail(f"--amount {amount!r} must be a positive number of ether with at most 18 decimals")
    return int(wei)


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
