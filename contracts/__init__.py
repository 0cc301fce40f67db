"""The chain side of medgossip: the AuditLedger contract and its Python binding.

    AuditLedger.sol        the contract (solc 0.8.37, evmVersion cancun)
    artifacts/             the committed ABI + bytecode (running a node needs no compiler)
    compile.py             `python -m contracts.compile [--check]`, via solc-shim.js
    ledger.py              AuditLedger: deploy, transact, views, event queries (the
                           public API; only contracts/ imports web3)
    events.py              the one event decoder and the raw-log fast path of queries
    _args.py               argument checks -> InvalidInput, before anything is sent
    _sender.py             build / sign / send / wait; local nonce, fees, nonce retry
    _translate.py          every backend's failure -> contracts.errors (one table of
                           custom errors: a new Solidity error is one line there)
    _connect.py            HTTP connection, ABI-derived interface, keys, ether transfers
    records.py             frozen records the binding returns; parse_bytes32
    units.py               epsilon units and the default privacy budget (no heavy imports)
    network.py             network.json: RPC URL, chain id, contract, deployment block
                           (what `admin deploy` writes and hospitals share; no keys)
    errors.py              LedgerError hierarchy (every backend's revert translated once)

Import `contracts.ledger` explicitly: importing this package stays cheap.
"""
