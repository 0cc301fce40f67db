"""medgossip explorer: the audit trail as a web page, for those who read it without a
command line (a data-protection officer, an ethics board, a patient).

It indexes the ledger's events into a local SQLite file and serves read-only pages
on 127.0.0.1 (node.explorer); the logic is there, this module parses and prints.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from node.cli._boundary import fail
from node.cli._chain import DEFAULT_DEVNET_FILE, ChainTarget, open_ledger, out, resolve_target
from node.cli._options import ContractAddress, DevnetFile, RpcUrl

if TYPE_CHECKING:
    from node.explorer.index import IndexStatus

DB_NAME = "explorer.sqlite"


def default_db(chain_file: Path | None, target: ChainTarget) -> Path:
    """Next to the chain file (its folder, for a devnet folder); for --rpc/--contract,
    one file per contract under run/explorer."""
    if chain_file is None and target.devnet is None:
        return Path("run/explorer") / f"{target.contract.lower()}.sqlite"
    chain_file = chain_file if chain_file is not None else DEFAULT_DEVNET_FILE
    return (chain_file if chain_file.is_dir() else chain_file.parent) / DB_NAME


def explorer(
    devnet: DevnetFile = None,
    rpc: RpcUrl = None,
    contract: ContractAddress = None,
    db: Optional[Path] = typer.Option(None, "--db", help="The index file (default: explorer.sqlite next to the chain file)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    poll: float = typer.Option(0.5, "--poll", min=0.1, max=3600, help="Seconds between index syncs once caught up."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every sync."),
) -> None:
    """Serve the audit explorer: nodes, contributions, budgets and withdrawals as web pages.

    Indexes the ledger's events into a local SQLite file (resumed after a restart,
    rebuilt after a chain reset) and serves read-only pages and a JSON API under /api/;
    the only upload is proof verification. Stop it with Ctrl-C.

    Example: medgossip explorer --devnet run/devnet/devnet.json --port 8080
    """
    target = resolve_target(devnet, rpc, contract)
    db_path = db if db is not None else default_db(devnet, target)
    if db_path.exists() and db_path.is_dir():
        fail(f"--db {db_path} is a folder: give the path of the index file")
    serve_explorer(target, db_path, host=host, port=port, poll=poll, verbose=verbose)


def serve_explorer(target: ChainTarget, db_path: Path, *, host: str, port: int, poll: float,
                   verbose: bool = False, banner: str = "audit explorer") -> None:
    """Index and serve until Ctrl-C (also used by `medgossip demo --explore`)."""
    import trio

    from node.explorer.app import create_app
    from node.explorer.index import Index
    from node.explorer.server import ServeOptions, run_explorer
    from node.logs import setup_logging

    setup_logging(verbose)
    index = Index(db_path, open_ledger(target))
    app = create_app(index.connect, open_ledger=lambda: open_ledger(target))

    def ready(url: str) -> None:
        out.print(f"{banner} at [bold]{url}[/bold]  (index {db_path}; Ctrl-C stops it)", soft_wrap=True)

    def synced(status: IndexStatus) -> None:
        if verbose or status.lag_blocks:
            out.print(f"[dim]indexed block {status.indexed_block} of {status.head_block}, {status.events} events[/dim]")

    try:
        trio.run(lambda: run_explorer(index, app, ServeOptions(host, port, poll), on_ready=ready, on_sync=synced))
    finally:
        index.close()


@dataclass
class ExplorerProcess:
    """`medgossip explorer` as a child process (the demo's --explore)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C: its clean stop
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_explorer_process(chain_file: Path, port: int, log: Path, timeout: float = 60.0) -> ExplorerProcess:
    """Start the explorer on `chain_file` at 127.0.0.1:`port` and wait until it answers;
    RuntimeError (with its log's end) if it exits or does not answer in time."""
    import os
    import sys
    import urllib.request

    from devnet.processes import spawn
    from node.cli.localnet import tail

    url = f"http://127.0.0.1:{port}"
    with open(log, "ab") as sink:
        process = spawn([sys.executable, "-m", "node.cli", "explorer", "--devnet", str(chain_file), "--port", str(port)],
                        stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    handle = ExplorerProcess(process, url, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the explorer exited with {process.returncode}; {log}:\n{tail(log, 5)}")
        try:
            with urllib.request.urlopen(f"{url}/api/since?seq=0", timeout=2) as answer:
                if answer.status == 200:
                    return handle
        except OSError:
            pass  # not listening yet
        time.sleep(0.3)
    handle.stop()
    raise RuntimeError(f"the explorer did not answer at {url} within {timeout:.0f} s; see {log}")
