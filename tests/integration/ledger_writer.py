"""A node process for the ledger tests: records N contributions with its own key, rounds
1..N in order (the contract takes one per round, rounds strictly increasing), while 3
worker threads withdraw consents on the same key (one nonce manager per process, shared
by 4 threads); then prints its delta hashes and withdrawn subjects.

    python -m tests.integration.ledger_writer RPC CONTRACT KEY_FILE TAG N WITHDRAWALS
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eth_utils import keccak

from contracts.ledger import AuditLedger


def main() -> None:
    rpc, contract, key_file, tag, count, withdrawals = sys.argv[1:7]
    ledger = AuditLedger(rpc, contract, Path(key_file).read_text().strip())
    n, w = int(count), int(withdrawals)

    def contribute() -> list[str]:
        hashes = []
        for i in range(n):
            delta = keccak(f"{tag}-{i}".encode())
            ledger.record_contribution(delta, keccak(b"base"), i + 1, 10 + i, keccak(b"root"), 0.01 * i)
            hashes.append("0x" + delta.hex())
        return hashes

    def withdraw(i: int) -> str:
        subject = keccak(f"{tag}-subject-{i}".encode())
        ledger.withdraw_consent(subject)
        return "0x" + subject.hex()

    with ThreadPoolExecutor(max_workers=4) as pool:  # one thread contributes, 3 withdraw
        recorded = pool.submit(contribute)
        subjects = list(pool.map(withdraw, range(w)))
        hashes = recorded.result()
    print(json.dumps({"address": ledger.account, "hashes": hashes, "subjects": subjects}))


if __name__ == "__main__":
    main()
