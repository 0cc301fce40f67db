"""Options shared by several commands, declared once (typer `Annotated` aliases).

A command takes, for example, ``json_output: JsonOutput = False`` or
``devnet: DevnetFile = None`` (--devnet or --network); the flag names and help text
live only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["ContractAddress", "DevnetFile", "JsonOutput", "RpcUrl"]

JsonOutput = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]

DevnetFile = Annotated[
    Optional[Path],
    typer.Option(
        "--devnet", "--network",
        help="The chain to use: a network.json (from `admin deploy`, no keys) or a devnet.json "
             "(default: run/devnet/devnet.json).",
    ),
]
"""--devnet and --network are one option: the file says which it is (see _chain.py)."""

RpcUrl = Annotated[
    Optional[str],
    typer.Option("--rpc", help="JSON-RPC URL (with --contract, instead of a devnet)."),
]

ContractAddress = Annotated[
    Optional[str],
    typer.Option("--contract", help="AuditLedger address (with --rpc)."),
]
