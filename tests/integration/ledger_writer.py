"""A node process for the ledger tests: records N contributions with its own key from
4 worker threads (one nonce manager per process), then prints its delta hashes.

    python -m tests.integration.ledger_writer RPC CONTRACT KEY_FILE TAG N ROUNDS
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eth_utils import keccak

from contracts.ledger import AuditLedger


def main() -> None:
    rpc, contract, key_file, tag, count, rounds = sys.argv[1:7]
    ledger = AuditLedger(rpc, contract, Path(key_file).read_text().strip())
    n, r = int(count), int(rounds)

    def one(i: int) -> str:
        delta = keccak(f"{tag}-{i}".encode())
        ledger.record_contribution(delta, keccak(b"base"), i % r, 10 + i, keccak(b"root"), 0.01 * i)
        return "0x" + delta.hex()

    with ThreadPoolExecutor(max_workers=4) as pool:
        hashes = list(pool.map(one, range(n)))
    print(json.dumps({"address": ledger.account, "hashes": hashes}))


if __name__ == "__main__":
    main()
