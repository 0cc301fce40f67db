"""The committed artifact must match the Solidity source (a stale artifact fails)."""

from __future__ import annotations

import pytest

from contracts.compile import (
    EVM_VERSION,
    SOLC_VERSION,
    compile_contract,
    compiler_available,
    load_artifact,
    source_sha256,
)


def test_artifact_source_hash_matches_the_source() -> None:
    artifact = load_artifact()
    assert artifact.source_sha256 == source_sha256(), (
        "contracts/artifacts/AuditLedger.json is stale: run `python -m contracts.compile`"
    )
    assert artifact.compiler_version.startswith(SOLC_VERSION)
    assert artifact.evm_version == EVM_VERSION


@pytest.mark.skipif(not compiler_available(), reason="node or npm solc not installed")
def test_recompiling_gives_the_committed_bytecode() -> None:
    fresh = compile_contract()
    committed = load_artifact()
    assert fresh.bytecode == committed.bytecode
    assert fresh.deployed_bytecode == committed.deployed_bytecode
    assert fresh.abi == committed.abi
