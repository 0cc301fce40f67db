"""node.audit on a real chain (eth-tester): a custodian proves, anyone verifies.

Each test builds a node's history (tests/node/audit_scenario.py): real data roots over
real leaf lists, audit records in a real checkpoint folder, a withdrawal by token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from contracts.ledger import AuditLedger
from node.audit import AuditError, prove_withdrawal, verify_audit
from node.proofs import load_proof, prove, write_proof
from tests.contracts.conftest import admin, chain, chain_backend, chain_module, registered_node  # noqa: F401
from tests.node.audit_scenario import SUBJECT, Custodian, commitment, history


@pytest.fixture
def custodian(registered_node: Callable[..., AuditLedger], tmp_path: Path) -> Custodian:  # noqa: F811
    return Custodian(registered_node(), tmp_path / "checkpoint")


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_prove_writes_exclusions_after_and_inclusions_before_and_verify_passes(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    withdrawal_block = history(custodian, admin)
    out = tmp_path / "proofs"

    report = prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)

    assert sorted(p.name for p in out.iterdir()) == [
        "index.json", "round-1-inclusion.json", "round-2-inclusion.json",
        "round-4-exclusion.json", "round-5-exclusion.json", "round-6-exclusion.json",
    ]
    assert report.violations == []
    index = _read(out / "index.json")
    assert index["format"] == "medgossip-audit-index/1"
    assert index["node"] == custodian.address and index["subject"] == "0x" + SUBJECT.hex()
    assert index["withdrawal"]["block"] == withdrawal_block and index["withdrawal"]["byToken"] is True
    assert index["sinceBlock"] == withdrawal_block
    assert [(c["round"], c["kind"]) for c in index["contributions"]] == [
        (1, "inclusion"), (2, "inclusion"), (3, None), (4, "exclusion"), (5, "exclusion"), (6, "exclusion"),
    ]
    assert {c["deltaHash"] for c in index["contributions"]} == {"0x" + h.hex() for h in custodian.recorded.values()}
    assert load_proof(out / "round-6-exclusion.json").leaf_count == 0

    verdict = verify_audit(custodian.ledger, [out])

    assert verdict.ok, verdict.checks
    assert verdict.node == custodian.address and verdict.since_block == withdrawal_block
    assert [(c.round, c.kind, c.ok) for c in verdict.checks] == [
        (1, "inclusion", True), (2, "inclusion", True), (4, "exclusion", True),
        (5, "exclusion", True), (6, "exclusion", True),
    ]
    assert verdict.missing == ()


def test_a_missing_proof_fails_and_names_the_contribution(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)
    (out / "round-5-exclusion.json").unlink()

    verdict = verify_audit(custodian.ledger, [out])

    assert not verdict.ok
    assert all(c.ok for c in verdict.checks)
    assert [(m.delta_hash, m.round, m.block) for m in verdict.missing] == [
        (custodian.recorded[5], 5, custodian.blocks[5])
    ]
    assert "1 contribution(s) without a proof" in verdict.summary and verdict.summary.startswith("FAIL")


@pytest.mark.parametrize("leaf_at", [0, -1])
def test_an_edited_leaf_commitment_fails_and_names_the_proof(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path, leaf_at: int  # noqa: F811
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)
    path = out / "round-4-exclusion.json"
    raw = _read(path)
    leaf = raw["leaves"][leaf_at]
    leaf["commitment"] = leaf["commitment"][:-1] + ("0" if leaf["commitment"][-1] != "0" else "1")
    path.write_text(json.dumps(raw))

    verdict = verify_audit(custodian.ledger, [out])

    assert not verdict.ok and verdict.missing == ()
    failed = [c for c in verdict.checks if not c.ok]
    assert [(Path(c.file).name, c.round) for c in failed] == [("round-4-exclusion.json", 4)]
    assert failed[0].result.startswith("proof does not hold")


def test_bad_inputs_are_each_named(custodian: Custodian, admin: AuditLedger, tmp_path: Path) -> None:  # noqa: F811
    history(custodian, admin)
    out = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)
    # a proof for a hash that is not on chain
    unknown = keccak(b"never recorded")
    write_proof(out / "unknown.json", prove([commitment(1)], SUBJECT, unknown))
    # a wrong format version
    raw = _read(out / "round-4-exclusion.json")
    (out / "v2.json").write_text(json.dumps({**raw, "format": "medgossip-proof/2"}))
    # a root mismatch: a consistent proof over other leaves, for a hash that is on chain
    write_proof(out / "other-root.json", prove([commitment(1), commitment(2)], SUBJECT, custodian.recorded[4]))
    # not JSON at all
    (out / "garbage.json").write_text("{not json")

    verdict = verify_audit(custodian.ledger, [out])

    failed = {Path(c.file).name: c.result for c in verdict.checks if not c.ok}
    assert set(failed) == {"unknown.json", "v2.json", "other-root.json", "garbage.json"}
    assert f"0x{unknown.hex()} is not recorded on chain" in failed["unknown.json"]
    assert "medgossip-proof/2" in failed["v2.json"] and "format" in failed["v2.json"]
    assert failed["other-root.json"].startswith("root mismatch")
    assert "not valid JSON" in failed["garbage.json"]
    assert not verdict.ok


def test_a_later_round_that_used_the_subject_is_a_violation(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin, late_use=True)
    out = tmp_path / "proofs"

    report = prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)

    assert [(v.round, v.kind, v.file) for v in report.violations] == [(5, "inclusion", "round-5-inclusion.json")]
    assert (out / "round-5-inclusion.json").exists() and not (out / "round-5-exclusion.json").exists()
    verdict = verify_audit(custodian.ledger, [out])
    assert not verdict.ok and verdict.missing == ()
    failed = [c for c in verdict.checks if not c.ok]
    assert [(c.round, c.kind) for c in failed] == [(5, "inclusion")]
    assert failed[0].result.startswith("VIOLATION")


def test_proofs_of_another_nodes_contribution_fail(
    custodian: Custodian, admin: AuditLedger, registered_node: Callable[..., AuditLedger], tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    other = Custodian(registered_node(), tmp_path / "other-checkpoint")
    other.contribute(1, [commitment(3)])
    out = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)
    write_proof(out / "theirs.json", prove([commitment(3)], SUBJECT, other.recorded[1]))

    verdict = verify_audit(custodian.ledger, [out])

    failed = [c for c in verdict.checks if not c.ok]
    assert [Path(c.file).name for c in failed] == ["theirs.json"]
    assert f"recorded by {other.address}" in failed[0].result and custodian.address in failed[0].result


def test_a_contribution_without_audit_record_cannot_be_proved(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    hidden = custodian.contribute(7, [commitment(1)], audit=False)

    with pytest.raises(AuditError, match=f"0x{hidden.hex()} \\(round 7, block \\d+\\).*cannot prove it"):
        prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, tmp_path / "proofs")
    assert not (tmp_path / "proofs").exists()


def test_a_subject_not_withdrawn_needs_a_since_block(
    custodian: Custodian, tmp_path: Path
) -> None:
    custodian.contribute(1, [SUBJECT])
    custodian.contribute(2, [commitment(1)])
    with pytest.raises(AuditError, match="not withdrawn on chain: give --since-block"):
        prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, tmp_path / "none")

    report = prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, tmp_path / "proofs",
                              since_block=custodian.blocks[2])

    assert report.index.withdrawal is None
    assert [(c.round, c.kind) for c in report.written] == [(1, "inclusion"), (2, "exclusion")]
    assert verify_audit(custodian.ledger, [tmp_path / "proofs"]).ok
    # Without index.json there is no since-block to hold the files to.
    (tmp_path / "proofs" / "index.json").unlink()
    with pytest.raises(AuditError, match="not withdrawn on chain and there is no index.json"):
        verify_audit(custodian.ledger, [tmp_path / "proofs"])


def test_the_node_is_found_without_node_json_and_files_verify_without_index(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    custodian.store.state_path.unlink()
    out = tmp_path / "proofs"

    report = prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)

    assert report.index.node == custodian.address
    files = sorted(out.glob("round-*.json"))
    assert verify_audit(custodian.ledger, files).ok  # the withdrawal block comes from the chain
    assert not verify_audit(custodian.ledger, files[:-1]).ok  # round 6 left out


def test_verify_rereads_the_withdrawal_block_from_chain(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    """An index claiming a later sinceBlock does not shrink what must be covered."""
    history(custodian, admin)
    out = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out, since_block=custodian.blocks[5])
    index = _read(out / "index.json")
    assert [c["round"] for c in index["contributions"] if c["kind"] == "exclusion"] == [5, 6]

    verdict = verify_audit(custodian.ledger, [out])

    assert verdict.since_block < custodian.blocks[4]
    assert [m.round for m in verdict.missing] == [4]


def test_prove_refuses_an_out_folder_with_json_files(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)
    with pytest.raises(AuditError, match="already holds .json files"):
        prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)


def test_verify_checks_the_subject_it_is_asked_about(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)
    assert verify_audit(custodian.ledger, [out], subject=SUBJECT).ok
    with pytest.raises(AuditError, match="the proofs are for subject"):
        verify_audit(custodian.ledger, [out], subject=commitment(1))


def test_verify_reads_the_chain_in_a_few_queries_not_one_per_proof(
    custodian: Custodian, admin: AuditLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """1,000 proofs must verify in seconds: the node's events come in one range query."""
    history(custodian, admin)
    out = tmp_path / "proofs"
    prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)
    calls: list[str] = []
    for name in ("contributions", "withdrawals", "contribution"):
        real = getattr(AuditLedger, name)
        monkeypatch.setattr(AuditLedger, name, lambda self, *a, _n=name, _r=real, **k: calls.append(_n) or _r(self, *a, **k))

    assert verify_audit(custodian.ledger, [out]).ok

    assert sorted(calls) == ["contributions", "withdrawals"]


def test_another_nodes_earlier_withdrawal_by_commitment_does_not_move_the_since_block(
    custodian: Custodian, admin: AuditLedger, registered_node: Callable[..., AuditLedger], tmp_path: Path  # noqa: F811
) -> None:
    """Node B withdraws the custodian's subject by commitment before round 1: it binds B
    only (the custodian went on using it, as it should); the binding withdrawal is the
    patient's token, after round 3."""
    griefer = registered_node()
    early = griefer.withdraw_consent(SUBJECT).block_number
    withdrawal_block = history(custodian, admin)
    out = tmp_path / "proofs"

    report = prove_withdrawal(custodian.ledger, SUBJECT, custodian.folder, out)
    verdict = verify_audit(admin, [out])

    assert report.violations == [] and verdict.ok, verdict.checks
    assert early < verdict.since_block == withdrawal_block
    assert verdict.withdrawal is not None and verdict.withdrawal.by_token
