"""`medgossip audit prove|verify` and `consent status` through the typer app, on the
eth-tester chain: exit codes, tables, --json and the one-line errors.

The commands reach the chain through `open_ledger`; here it hands them a handle on the
in-process chain (the real JSON-RPC path runs in tests/integration/test_audit_cli.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts.ledger import AuditLedger
from node.cli import audit as audit_cli
from node.cli import consent as consent_cli
from tests.cli_helpers import Ran, call, one_clear_line
from tests.contracts.conftest import Chain, admin, chain, chain_backend, chain_module, registered_node  # noqa: F401
from tests.node.audit_scenario import SUBJECT, TOKEN, Custodian, commitment, history


@pytest.fixture
def custodian(
    chain: Chain, registered_node: Callable[..., AuditLedger], tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Custodian:
    for module in (audit_cli, consent_cli):
        monkeypatch.setattr(module, "open_ledger", lambda target, key=None: chain.handle())
    return Custodian(registered_node(), tmp_path / "checkpoint")


def chain_args(chain: Chain) -> list[str]:  # noqa: F811
    return ["--rpc", "http://127.0.0.1:9", "--contract", chain.address]


def prove(chain: Chain, custodian: Custodian, out: Path, *more: str) -> Ran:  # noqa: F811
    return call("audit", "prove", "--token", TOKEN.hex(), "--checkpoint-dir", str(custodian.folder),
                "--out", str(out), *chain_args(chain), *more)


def test_prove_then_verify_with_tables_and_json(
    chain: Chain, custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    block = history(custodian, admin)
    out = tmp_path / "proofs"

    proved = prove(chain, custodian, out, "--json")
    assert proved.returncode == 0, proved.stderr
    index = json.loads(proved.stdout)
    assert index["withdrawal"]["block"] == block and index["folder"] == str(out)
    assert len([c for c in index["contributions"] if c["file"]]) == 5

    table = call("audit", "verify", str(out), *chain_args(chain))
    assert table.returncode == 0, table.stderr
    assert "round-4-exclusion.json" in table.stdout and "holds: not used" in table.stdout
    assert "PASS: 5 proofs" in table.stdout and table.stderr == ""

    as_json = call("audit", "verify", str(out), "--json", *chain_args(chain))
    assert as_json.returncode == 0, as_json.stderr
    verdict = json.loads(as_json.stdout)
    assert verdict["ok"] is True and verdict["since_block"] == block and verdict["missing"] == []
    assert [p["round"] for p in verdict["proofs"]] == [1, 2, 4, 5, 6]
    assert verdict["withdrawal"]["by_token"] is True

    status = call("consent", "status", "--subject", "0x" + SUBJECT.hex(), "--proofs", str(out), *chain_args(chain))
    assert status.returncode == 0, status.stderr
    assert f"withdrawn in block {block}" in status.stdout and "patient's token" in status.stdout
    assert "PASS" in status.stdout


def test_verify_names_the_missing_contribution_in_one_line(
    chain: Chain, custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    assert prove(chain, custodian, out).returncode == 0
    (out / "round-6-exclusion.json").unlink()

    result = call("audit", "verify", str(out), *chain_args(chain))

    one_clear_line(result, "missing exclusion proof", "0x" + custodian.recorded[6].hex(), "round 6")
    assert "FAIL" in result.stdout


def test_a_contribution_recorded_after_the_folder_was_made_asks_for_new_proofs(
    chain: Chain, custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    assert prove(chain, custodian, out).returncode == 0
    proved_at = json.loads((out / "index.json").read_text())["provedAtBlock"]
    later = custodian.contribute(7, [commitment(1)])  # the custodian trains on

    result = call("audit", "verify", str(out), *chain_args(chain))

    assert custodian.blocks[7] > proved_at
    one_clear_line(result, "0x" + later.hex(), "round 7", f"after this folder was made (block {proved_at})",
                   "audit prove` again")


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("{not json", ["bad.json", "not valid JSON"]),
        (json.dumps({"format": "medgossip-proof/9"}), ["bad.json", "medgossip-proof/9"]),
    ],
)
def test_verify_reports_a_bad_file_in_one_line(
    chain: Chain, custodian: Custodian, admin: AuditLedger, tmp_path: Path,  # noqa: F811
    content: str, needles: list[str],
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    assert prove(chain, custodian, out).returncode == 0
    (out / "bad.json").write_text(content)

    one_clear_line(call("audit", "verify", str(out), *chain_args(chain)), *needles)


def test_verify_an_edited_proof_names_it(
    chain: Chain, custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    assert prove(chain, custodian, out).returncode == 0
    path = out / "round-5-exclusion.json"
    raw = json.loads(path.read_text())
    raw["dataRoot"] = "0x" + "ab" * 32
    path.write_text(json.dumps(raw))

    one_clear_line(call("audit", "verify", str(out), *chain_args(chain)), "round-5-exclusion.json", "root mismatch")


def test_prove_a_violation_exits_3_after_writing(
    chain: Chain, custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin, late_use=True)
    out = tmp_path / "proofs"

    result = prove(chain, custodian, out)

    assert result.returncode == 3
    one_clear_line(result, "broken promise", "round 5", "round-5-inclusion.json")
    assert (out / "index.json").exists()
    one_clear_line(call("audit", "verify", str(out), *chain_args(chain)), "round-5-inclusion.json", "VIOLATION")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--subject", "0x" + "11" * 32, "--token", "22" * 32], ["exactly one of --token"]),
        (["--token", "xyz"], ["consent token is 64 hex"]),
        (["--subject", "0x1234"], ["--subject must be 64 hex"]),
    ],
)
def test_prove_argument_errors(
    chain: Chain, custodian: Custodian, tmp_path: Path, args: list[str], needles: list[str]  # noqa: F811
) -> None:
    result = call("audit", "prove", *args, "--checkpoint-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                  *chain_args(chain))
    one_clear_line(result, *needles)


def test_prove_errors_are_one_line(chain: Chain, custodian: Custodian, tmp_path: Path) -> None:  # noqa: F811
    one_clear_line(prove(chain, custodian, tmp_path / "o"), "audit", "does not exist", "checkpoint folder")
    (custodian.folder / "audit").mkdir(parents=True)
    one_clear_line(prove(chain, custodian, tmp_path / "o"), "no contribution to prove")
    custodian.contribute(1, [commitment(1)])
    one_clear_line(prove(chain, custodian, tmp_path / "o"), "not withdrawn on chain", "--since-block")


def test_verify_input_errors_are_one_line(chain: Chain, custodian: Custodian, tmp_path: Path) -> None:  # noqa: F811
    one_clear_line(call("audit", "verify", str(tmp_path / "nowhere"), *chain_args(chain)), "nowhere", "does not exist")
    (tmp_path / "empty").mkdir()
    one_clear_line(call("audit", "verify", str(tmp_path / "empty"), *chain_args(chain)), "nothing to verify")
    (tmp_path / "index.json").write_text(json.dumps({"format": "something-else"}))
    one_clear_line(call("audit", "verify", str(tmp_path / "index.json"), *chain_args(chain)),
                   "index.json", "medgossip-audit-index/1")


def test_consent_status_of_a_subject_in_force_and_withdrawn(
    chain: Chain, custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    fresh = call("consent", "status", "--token", TOKEN.hex(), *chain_args(chain))
    assert fresh.returncode == 0, fresh.stderr
    assert "consent in force" in fresh.stdout

    history(custodian, admin)
    result = call("consent", "status", "--token", TOKEN.hex(), "--json", *chain_args(chain))

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["withdrawn_by_token"] is True and status["subject"] == "0x" + SUBJECT.hex()
    assert status["withdrawn_for"] == []
    [withdrawal] = status["withdrawals"]
    assert withdrawal["by"] == admin.account and withdrawal["by_token"] is True
    one_clear_line(call("consent", "status", *chain_args(chain)), "exactly one of --token")


def test_consent_status_with_proofs_fails_like_verify(
    chain: Chain, custodian: Custodian, admin: AuditLedger, tmp_path: Path  # noqa: F811
) -> None:
    history(custodian, admin)
    out = tmp_path / "proofs"
    assert prove(chain, custodian, out).returncode == 0
    (out / "round-4-exclusion.json").unlink()

    result = call("consent", "status", "--token", TOKEN.hex(), "--proofs", str(out), "--json", *chain_args(chain))

    line = one_clear_line(result, "missing exclusion proof", "round 4")
    assert "0x" + custodian.recorded[4].hex() in line
    status = json.loads(result.stdout)
    assert status["withdrawn_by_token"] is True and status["proofs"]["ok"] is False
    other = call("consent", "status", "--subject", "0x" + commitment(2).hex(), "--proofs", str(out), *chain_args(chain))
    one_clear_line(other, "the proofs are for subject")
