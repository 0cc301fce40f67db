"""The chain side of medgossip: the AuditLedger contract and its Python binding.

    AuditLedger.sol        the contract (solc 0.8.37, evmVersion cancun)
    artifacts/             the committed ABI + bytecode (running a node needs no compiler)
    compile.py             `python -m contracts.compile [--check]`, via solc-shim.js
    ledger.py              AuditLedger: deploy, transact, views, event queries (the only
                           module importing web3)
    records.py             frozen records the binding returns; parse_bytes32
    errors.py              LedgerError hierarchy (every backend's revert translated once)

Import `contracts.ledger` explicitly: importing this package stays cheap.
"""
