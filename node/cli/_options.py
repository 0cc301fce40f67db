"""Options shared by several commands, declared once (typer `Annotated` aliases).

A command takes, for example, ``json_output: JsonOutput = False`` or
``devnet: DevnetFile = None``; the flag name and help text live only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["ContractAddress", "DevnetFile", "JsonOutput", "RpcUrl"]

JsonOutput = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]

DevnetFile = Annotated[
    Optional[Path],
    typer.Option("--devnet", help="devnet.json to use (default: run/devnet/devnet.json)."),
]

RpcUrl = Annotated[
    Optional[str],
    typer.Option("--rpc", help="JSON-RPC URL (with --contract, instead of a devnet)."),
]

ContractAddress = Annotated[
    Optional[str],
    typer.Option("--contract", help="AuditLedger address (with --rpc)."),
]
