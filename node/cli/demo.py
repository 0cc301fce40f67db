"""medgossip demo: the whole system on this machine, in a few minutes.

A local anvil devnet, the AuditLedger deployed, N hospitals each with their own DICOM
corpus (synthetic patients, non-IID labels) ingested and de-identified, N peer processes
gossiping deltas over libp2p on 127.0.0.1, one patient withdrawing consent midway, and
at the end gossip learning next to centralised and isolated training on the same data
and step budget. With `--dp` the peers train with DP-SGD under the privacy budget each
node has on chain (`--epsilon-budget`): a peer whose next round would go over it stops
training and only merges, and the tables show epsilon spent against budget per node. Everything it starts is stopped at the end, also on Ctrl-C or SIGTERM;
killed hard (SIGKILL), its children still end, by their parent-death signal
(devnet/processes.py). With `--explore` the audit explorer serves the ledger as web pages
from the start (its URL is printed) and keeps serving after the report until Ctrl-C.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from contracts.units import DEFAULT_EPSILON_BUDGET
from node.config import NodeConfig
from node.peer.status import BUDGET_SPENT

_DEFAULT = {f.name: f.default for f in fields(NodeConfig)}
"""the node's defaults (read off the dataclass: building one would import torch)."""

console = Console()


def demo(
    peers: int = typer.Option(4, "--peers", min=2, max=8, help="Number of hospitals / peer processes."),
    rounds: int = typer.Option(30, "--rounds", min=2, help="Gossip rounds each peer runs."),
    local_steps: int = typer.Option(10, "--local-steps", min=1, help="Local SGD steps per round."),
    fan_out: int = typer.Option(3, "--fan-out", min=0, help="Peers' deltas merged per round (3 = all others of 4)."),
    merge: str = typer.Option(_DEFAULT["merge"], "--merge", help="Merge rule (the rules: `medgossip node start --help`)."),
    codec: str = typer.Option(_DEFAULT["codec"], "--codec", help="Delta codec (the codecs: `medgossip node start --help`)."),
    alpha: float = typer.Option(0.5, "--alpha", help="Dirichlet alpha of the non-IID split (smaller: more skewed)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the corpus and the peers."),
    workdir: Path = typer.Option(Path("run/demo"), "--workdir", help="Scratch folder (wiped if an earlier demo made it)."),
    report: Path = typer.Option(Path("demo-report"), "--report", help="Folder for report.json and accuracy.png."),
    timeout: float = typer.Option(900, "--timeout", help="Give up after this many seconds."),
    dp: bool = typer.Option(False, "--dp", help="Train with DP-SGD under each node's privacy budget on chain."),
    noise_multiplier: float = typer.Option(1.0, "--noise-multiplier", min=0.1, help="DP-SGD noise multiplier (with --dp)."),
    epsilon_budget: float = typer.Option(
        DEFAULT_EPSILON_BUDGET, "--epsilon-budget", min=0.0, help="Each node's lifetime epsilon budget, set on chain."),
    explore: bool = typer.Option(
        False, "--explore", help="Serve the audit explorer (web pages over the ledger) from the start, "
        "and keep it serving after the report until Ctrl-C."),
    explore_port: int = typer.Option(8080, "--explore-port", min=1, max=65535, help="The explorer's port (with --explore)."),
) -> None:
    """Run a 4-peer gossip-learning network on a local devnet, end to end, and report."""
    from devnet.processes import Terminated, interrupt_on_terminate

    try:
        with interrupt_on_terminate():
            _demo(peers, rounds, local_steps, fan_out, merge, codec, alpha, seed, workdir, report, timeout,
                  noise_multiplier if dp else 0.0, epsilon_budget, explore_port if explore else None)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: _demo stopped everything on its way out
        raise typer.Exit(exc.exit_code if isinstance(exc, Terminated) else 130) from None


def _demo(
    peers: int, rounds: int, local_steps: int, fan_out: int, merge: str, codec: str, alpha: float,
    seed: int, workdir: Path, report: Path, timeout: float, noise_multiplier: float = 0.0,
    epsilon_budget: float = DEFAULT_EPSILON_BUDGET, explore_port: int | None = None,
) -> None:
    from node.cli.explorer import ExplorerProcess
    from node.cli.localnet import LocalNet, create
    from node.config import NodeConfig

    template = NodeConfig(
        rounds=rounds, local_steps=local_steps, fan_out=fan_out, merge=merge, codec=codec,
        linger=-1, dp_noise_multiplier=noise_multiplier,
    )
    started = time.monotonic()
    net: LocalNet | None = None
    explorer: ExplorerProcess | None = None
    try:
        with console.status("setting up") as spinner:
            net = create(
                workdir, peers, template=template, alpha=alpha, seed=seed, epsilon_budget=epsilon_budget,
                step=lambda msg: (spinner.update(msg), console.log(msg)),
            )
        console.log(f"devnet at {net.devnet.rpc_url}, AuditLedger at {net.devnet.contract}")
        if explore_port is not None:
            explorer = _start_explorer(net, explore_port)
        net.start_all()
        console.log(f"started {peers} peer processes (logs in {workdir}/peer-*/peer.log)")
        withdrawal = _run_rounds(net, rounds, timeout - (time.monotonic() - started))
        results = _results(net, template, rounds, withdrawal)
        _print_results(results)
        _write_report(results, report)
        console.print(f"\nreport: {report / 'report.json'}, plot: {report / 'accuracy.png'}")
        console.print(f"finished in {time.monotonic() - started:.0f} s")
        if explorer is not None:
            _keep_exploring(explorer)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping everything[/yellow]")
        raise
    except RuntimeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        if explorer is not None:
            explorer.stop()
        if net is not None:
            with console.status("stopping peers and devnet"):
                net.stop()


def _start_explorer(net: Any, port: int) -> Any:
    """The explorer on the demo's devnet, or None (and why) if it cannot start: the
    demo runs on without it."""
    from node.cli.explorer import start_explorer_process

    try:
        explorer = start_explorer_process(net.devnet_file, port, net.workdir / "explorer.log")
    except RuntimeError as exc:
        console.print(f"[yellow]the audit explorer did not start (the demo goes on):[/yellow] {exc}")
        return None
    console.log(f"audit explorer at [bold]{explorer.url}[/bold] (live while the demo runs)")
    return explorer


def _keep_exploring(explorer: Any) -> None:
    """Serve until Ctrl-C (a normal end here); SIGTERM still ends the demo as interrupted."""
    from devnet.processes import Terminated

    console.print(f"\n[bold]audit explorer at {explorer.url}[/bold], over the saved chain: Ctrl-C stops it and the devnet")
    try:
        while explorer.process.poll() is None:
            time.sleep(0.5)
        console.print(f"[yellow]the explorer exited with {explorer.process.returncode}; see {explorer.log}[/yellow]")
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            raise


def _run_rounds(net: Any, rounds: int, timeout: float) -> dict[str, Any]:
    """Show progress until every peer finished; withdraw one patient's consent midway."""
    from node.data import LinkageTable

    withdrawal: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    with Live(_table(net, withdrawal), console=console, refresh_per_second=2) as live:
        while True:
            statuses = [p.status() for p in net.peers]
            rounds_done = [s.round if s else 0 for s in statuses]
            if not withdrawal and min(rounds_done) >= rounds // 2:
                row = LinkageTable.load(net.peers[0].config.data_dir).rows[0]
                ledger = net.ledger(net.devnet.relayer_key)
                tx = ledger.withdraw_consent_with_token(row.token)
                withdrawal = {
                    "pseudonym": row.pseudonym,
                    "hospital": net.peers[0].name,
                    "commitment": "0x" + row.commitment.hex(),
                    "tx_hash": tx.tx_hash,
                    "block": tx.block_number,
                    "at_round": min(rounds_done),
                    "applied": {},
                }
                live.console.log(
                    f"patient {row.pseudonym} of {net.peers[0].name} withdraws consent with their token "
                    f"(tx {tx.tx_hash[:12]}…, block {tx.block_number})"
                )
            if withdrawal:
                for peer, status in zip(net.peers, statuses):
                    if status and status.withdrawals_applied and peer.name not in withdrawal["applied"]:
                        withdrawal["applied"][peer.name] = status.round
                        live.console.log(f"{peer.name} applied the withdrawal at round {status.round}")
            live.update(_table(net, withdrawal))
            if all(s and s.finished for s in statuses):
                # Finished peers keep merging the others' last deltas: wait for that.
                live.console.log("all rounds done; peers merge each other's last deltas")
                net.wait(net.everyone_merged_everything, timeout=60)
                live.update(_table(net, withdrawal))
                return withdrawal
            if time.monotonic() > deadline:
                raise RuntimeError("the demo timed out; peer logs are in the workdir")
            net.wait(lambda: False, timeout=0.5, poll=0.5)


def _table(net: Any, withdrawal: dict[str, Any]) -> Table:
    table = Table(title="gossip learning on loopback")
    dp = net.peers[0].config.dp_enabled
    columns = ("peer", "round", "acc (local)", "acc (test)", "merged", "peers", "MB sent", "queued", "withdrawal")
    for col in (*columns, *(("epsilon / budget",) if dp else ())):
        table.add_column(col, justify="right")
    for peer in net.peers:
        s = peer.status()
        if s is None:
            table.add_row(peer.name, "starting", *["-"] * (len(table.columns) - 2))
            continue
        table.add_row(
            peer.name,
            f"{s.round}/{s.rounds_target or '?'}",
            f"{s.accuracy:.3f}",
            "-" if s.eval_accuracy is None else f"{s.eval_accuracy:.3f}",
            str(s.merged_total) + (f" (+{s.known_unmerged} due)" if s.known_unmerged else ""),
            str(s.peers),
            f"{s.bytes_sent / 1e6:.1f}",
            str(s.queued_records) + (" (paused)" if s.paused else ""),
            "applied" if s.withdrawals_applied else ("pending" if withdrawal else "-"),
            *((s.epsilon_summary(),) if dp else ()),
        )
    return table


def _results(net: Any, template: Any, rounds: int, withdrawal: dict[str, Any]) -> dict[str, Any]:
    """Gossip curves from the peers' journals; centralised and isolated computed here."""
    from rich.progress import Progress

    from node.baselines import centralised_curve, isolated_curves
    from node.data import load_image_set
    from node.peer import learner_settings

    sets = [load_image_set(p.config.data_dir, size=template.image_size) for p in net.peers]
    test = load_image_set(net.test_data, size=template.image_size)
    settings = learner_settings(replace(template, seed=0))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("centralised and isolated baselines", total=2 * rounds)
        central = centralised_curve(settings, sets, test, rounds, lambda _r: progress.advance(task))
        isolated = isolated_curves(settings, sets, test, rounds, lambda _r: progress.advance(task))
    per_peer = {}
    for peer in net.peers:
        state = peer.store.load_state()
        status = peer.status()
        per_peer[peer.name] = {
            "curve": [h["eval_accuracy"] for h in state.history if not h.get("late_merge")],
            "final_accuracy": state.history[-1]["eval_accuracy"] if state.history else None,
            "bytes_sent": status.bytes_sent if status else 0,
            "contributions": len(state.journal),
            "merged": status.merged_total if status else 0,
            "epsilon_total": status.epsilon_total if status else 0.0,
            "budget_state": status.budget.state if status and status.budget else "unknown",
            "dropped": status.dropped if status else {},
        }
    gossip_curve = [
        sum(p["curve"][r] for p in per_peer.values()) / len(per_peer)
        for r in range(min(len(p["curve"]) for p in per_peer.values()))
    ]
    isolated_mean = [sum(c[r] for c in isolated) / len(isolated) for r in range(rounds)]
    ledger = net.ledger()
    contributions = ledger.contributions()
    withdrawals = ledger.withdrawals()
    by_node: dict[str, int] = {}
    for c in contributions:
        by_node[c.node] = by_node.get(c.node, 0) + 1
    names = {peer.address: peer.name for peer in net.peers}
    budgets = {
        info.address: {"peer": names.get(info.address, ""), "epsilon_spent": info.epsilon_spent,
                       "epsilon_budget": info.epsilon_budget}
        for info in ledger.registered_nodes()
    }
    return {
        "peers": per_peer,
        "rounds": rounds,
        "gossip_mean_curve": gossip_curve,
        "centralised_curve": central,
        "isolated_mean_curve": isolated_mean,
        "isolated_final": [c[-1] for c in isolated],
        "gossip_final_mean": sum(p["final_accuracy"] for p in per_peer.values()) / len(per_peer),
        "centralised_final": central[-1],
        "isolated_final_mean": isolated_mean[-1],
        "withdrawal": withdrawal,
        "ledger": {
            "contract": net.devnet.contract,
            "contributions": len(contributions),
            "contributions_by_node": by_node,
            "privacy_budgets": budgets,
            "withdrawals": [
                {"subject": "0x" + w.subject.hex(), "by_token": w.by_token, "block": w.block_number, "tx": w.tx_hash}
                for w in withdrawals
            ],
        },
        "devnet": str(net.devnet_file),
    }


def _print_results(r: dict[str, Any]) -> None:
    table = Table(title="accuracy on the common test set after the last round")
    table.add_column("who")
    table.add_column("accuracy", justify="right")
    table.add_column("MB sent", justify="right")
    table.add_column("contributions", justify="right")
    table.add_column("merged", justify="right")
    for name, p in r["peers"].items():
        table.add_row(f"gossip {name}", f"{p['final_accuracy']:.4f}", f"{p['bytes_sent'] / 1e6:.1f}",
                      str(p["contributions"]), str(p["merged"]))
    table.add_row("[bold]gossip mean[/bold]", f"[bold]{r['gossip_final_mean']:.4f}[/bold]", "", "", "")
    table.add_row("centralised (pooled data)", f"{r['centralised_final']:.4f}", "", "", "")
    table.add_row("isolated mean (no sharing)", f"{r['isolated_final_mean']:.4f}", "", "", "")
    console.print(table)
    ledger = r["ledger"]
    t2 = Table(title=f"audit ledger {ledger['contract']}")
    t2.add_column("node")
    t2.add_column("contributions recorded", justify="right")
    t2.add_column("epsilon spent / budget (on chain)", justify="right")
    t2.add_column("peer's accountant", justify="right")
    for node, budget in ledger["privacy_budgets"].items():
        peer = r["peers"].get(budget["peer"], {})
        spent = f"{budget['epsilon_spent']:.4f} / {budget['epsilon_budget']:.4f}"
        accountant = f"{peer['epsilon_total']:.4f}" if peer else "-"
        if peer.get("budget_state") == BUDGET_SPENT:
            accountant += f" ({BUDGET_SPENT})"
        t2.add_row(f"{budget['peer']} {node}".strip(), str(ledger["contributions_by_node"].get(node, 0)), spent, accountant)
    console.print(t2)
    for w in ledger["withdrawals"]:
        console.print(f"consent withdrawn: subject {w['subject'][:18]}… block {w['block']} "
                      f"({'by token' if w['by_token'] else 'by custodian'})")
    applied = r["withdrawal"].get("applied", {})
    if applied:
        console.print("applied by: " + ", ".join(f"{k} (round {v})" for k, v in applied.items()))
    console.print(
        f"(the chain is saved: `medgossip devnet start --dir {Path(r['devnet']).parent} --nodes {len(r['peers'])}` "
        "brings it back, "
        f"then `medgossip ledger query --devnet {r['devnet']}` shows every record)"
    )


def _write_report(r: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(r, indent=1))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = range(1, r["rounds"] + 1)
    ax.plot(range(1, len(r["gossip_mean_curve"]) + 1), r["gossip_mean_curve"], label="gossip (mean of peers)", lw=2)
    ax.plot(x, r["centralised_curve"], label="centralised (pooled data)", ls="--")
    ax.plot(x, r["isolated_mean_curve"], label="isolated (mean of peers)", ls=":")
    at = r["withdrawal"].get("at_round")
    if at:
        ax.axvline(at, color="grey", lw=0.8)
        ax.text(at + 0.3, 0.3, "consent withdrawn", color="grey", fontsize=8, rotation=90)
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy on the common test set")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("medgossip demo: same data, same local steps")
    fig.tight_layout()
    fig.savefig(folder / "accuracy.png", dpi=120)
    plt.close(fig)
