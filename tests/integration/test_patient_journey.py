"""A patient's journey, end to end, in real processes: the promise of a withdrawal, proved.

anvil + AuditLedger, three `medgossip node start` peers (localnet: a reduced DICOM demo
corpus ingested per hospital, consent tokens in each hospital's linkage table), and
`medgossip` itself as subprocesses for what people do:

1. hospitals ingest DICOM (localnet's `create`) and train a few rounds;
2. a patient of hospital A (peer-0) whose images A's first round used withdraws with
   their token (`consent withdraw --token`, relayed by the devnet's relayer);
3. the peers train on until A has recorded CONTRIBUTIONS_AFTER contributions after the
   withdrawal's block, then stop;
4. A proves (`audit prove --token --checkpoint-dir`), and an auditor in another folder,
   knowing only the RPC URL, the contract address and the copied proof folder, verifies
   (`audit verify --rpc --contract`): it passes, every A contribution from the
   withdrawal's block on has an exclusion proof, every earlier one that used the subject
   an inclusion proof; A's audit records agree;
5. two tampered copies fail, each naming what is wrong: a deleted exclusion proof (the
   missing contribution's delta hash) and an edited leaf (the proof file).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts.records import ContributionRecorded
from node.cli.localnet import LocalNet, PeerHandle, create
from node.config import NodeConfig
from tests.cli_helpers import Ran, one_clear_line, run
from tests.integration.peer_harness import logs, status, wait_until

pytestmark = pytest.mark.slow  # anvil, three peer processes and the CLI as subprocesses

ROUNDS = 60
"""room to spare: the test stops the peers once it has what it needs."""
ROUNDS_BEFORE = 3
"""rounds A trains (and records) before the patient withdraws."""
CONTRIBUTIONS_AFTER = 3
"""A's contributions recorded after the withdrawal's block before the peers stop."""
TEMPLATE = NodeConfig(rounds=ROUNDS, local_steps=4, fan_out=2, chain_poll=0.5, linger=-1, eval_every=50)


def hexh(value: bytes) -> str:
    return "0x" + value.hex()


def audit_subjects(peer: PeerHandle, round_: int) -> set[str]:
    record = peer.store.load_audit(round_)
    assert record is not None, f"{peer.name} has no audit record for round {round_}"
    return set(record["subjects"])


def succeeded(result: Ran, what: str) -> Ran:
    assert result.returncode == 0, f"{what} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@dataclass(frozen=True)
class Journey:
    """What the run left behind, for the checks."""

    net: LocalNet
    custodian: PeerHandle
    subject: str
    """the withdrawn subject's commitment, 0x-hex."""
    withdrawal_block: int
    contributions: tuple[ContributionRecorded, ...]
    """A's contributions on chain after the peers stopped, oldest first."""
    proofs: Path
    """the folder `audit prove` wrote."""
    proved: Ran
    """what `audit prove` said."""

    @property
    def after(self) -> list[ContributionRecorded]:
        return [c for c in self.contributions if c.block_number >= self.withdrawal_block]

    @property
    def before(self) -> list[ContributionRecorded]:
        return [c for c in self.contributions if c.block_number < self.withdrawal_block]

    def verify(self, folder: Path, *extra: str) -> Ran:
        """`audit verify` as an auditor: its own empty folder, the RPC URL and contract only."""
        auditor = folder.parent / f"auditor-{folder.name}"
        auditor.mkdir()
        return run("audit", "verify", str(folder), "--rpc", self.net.devnet.rpc_url,
                   "--contract", self.net.devnet.contract, *extra, cwd=auditor)


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    from node.data import LinkageTable

    workdir = tmp_path_factory.mktemp("patient-journey")
    net = create(workdir / "net", 3, template=TEMPLATE, alpha=0.5, seed=11, max_images=150)
    custodian = net.peers[0]
    try:
        # 1-2. ingest (create) and train a few rounds
        net.start_all()
        wait_until(net, lambda: status(custodian).get("round", 0) >= ROUNDS_BEFORE, 90,
                   f"{custodian.name} to train {ROUNDS_BEFORE} rounds", while_training=True)
        first = audit_subjects(custodian, 1)
        rows = [r for r in LinkageTable.load(custodian.config.data_dir).rows if hexh(r.commitment) in first]
        assert rows, f"no patient of {custodian.name}'s linkage table is in its first audit record"
        row = rows[0]

        # 3. the patient withdraws with their token (relayed by the devnet's relayer)
        withdrawn = succeeded(run("consent", "withdraw", "--token", row.token_hex, "--json",
                                  "--devnet", str(net.devnet_file)), "consent withdraw")
        block = json.loads(withdrawn.stdout)["block_number"]

        # 4. train on until A has recorded enough contributions after the withdrawal
        ledger = net.ledger()
        wait_until(
            net, lambda: len(ledger.contributions(node=custodian.address, from_block=block)) >= CONTRIBUTIONS_AFTER,
            90, f"{custodian.name} to record {CONTRIBUTIONS_AFTER} contributions after block {block}",
            while_training=True,
        )
        for peer in net.peers:  # the history to prove ends here: nothing more is recorded
            net.stop_peer(peer)
        contributions = tuple(ledger.contributions(node=custodian.address))

        # 5. the custodian proves
        proofs = workdir / "proofs"
        proved = run("audit", "prove", "--token", row.token_hex, "--checkpoint-dir",
                     str(custodian.config.checkpoint_dir), "--out", str(proofs), "--devnet", str(net.devnet_file))
        yield Journey(net, custodian, hexh(row.commitment), block, contributions, proofs, proved)
    finally:
        net.stop()


def test_the_custodian_really_stopped_using_the_subject(journey: Journey) -> None:
    custodian = journey.custodian
    assert len(journey.after) >= CONTRIBUTIONS_AFTER
    used_before = [c.round for c in journey.before if journey.subject in audit_subjects(custodian, c.round)]
    assert used_before, f"the subject is in none of {custodian.name}'s audit records before the withdrawal"
    for c in journey.after:
        record = custodian.store.load_audit(c.round)
        assert record is not None and record["delta_hash"] == hexh(c.delta_hash), f"round {c.round}"
        assert journey.subject not in record["subjects"], (
            f"{custodian.name} used the withdrawn subject in round {c.round} (block {c.block_number}, "
            f"withdrawal in block {journey.withdrawal_block})\n{logs([custodian])}"
        )


def test_an_auditor_with_only_rpc_contract_and_folder_verifies_the_proofs(journey: Journey) -> None:
    succeeded(journey.proved, "audit prove")  # exit 3: a contribution after the withdrawal used the subject
    # Prepare: the auditor gets a copy of the folder, nothing else
    folder = journey.proofs.parent / "received"
    shutil.copytree(journey.proofs, folder)

    verified = succeeded(journey.verify(folder, "--json"), "audit verify")

    verdict = json.loads(verified.stdout)
    assert verdict["ok"] is True and verdict["node"] == journey.custodian.address
    assert verdict["since_block"] == journey.withdrawal_block and verdict["missing"] == []
    index = json.loads((journey.proofs / "index.json").read_text())
    assert index["withdrawal"]["block"] == journey.withdrawal_block and index["withdrawal"]["byToken"] is True
    listed = {e["deltaHash"]: e for e in index["contributions"]}
    assert set(listed) == {hexh(c.delta_hash) for c in journey.contributions}
    for c in journey.after:  # every contribution after the withdrawal: an exclusion proof that holds
        entry = listed[hexh(c.delta_hash)]
        assert entry["kind"] == "exclusion" and not entry["violation"], entry
        assert (journey.proofs / entry["file"]).is_file()
    used = [c for c in journey.before if journey.subject in audit_subjects(journey.custodian, c.round)]
    assert used
    for c in used:  # the history told whole: the rounds that did use the subject
        assert listed[hexh(c.delta_hash)]["kind"] == "inclusion", listed[hexh(c.delta_hash)]
    checked = {(p["round"], p["kind"]) for p in verdict["proofs"] if p["ok"]}
    assert checked == {(c.round, "exclusion") for c in journey.after} | {(c.round, "inclusion") for c in used}


def test_a_deleted_exclusion_proof_fails_naming_the_contribution(journey: Journey) -> None:
    succeeded(journey.proved, "audit prove")  # the untouched folder is whole
    folder = journey.proofs.parent / "deleted"
    shutil.copytree(journey.proofs, folder)
    index = json.loads((folder / "index.json").read_text())
    hidden = next(e for e in index["contributions"] if e["kind"] == "exclusion")
    (folder / hidden["file"]).unlink()

    result = journey.verify(folder)

    one_clear_line(result, "missing exclusion proof", hidden["deltaHash"], f"round {hidden['round']}")


def test_an_edited_leaf_fails_naming_the_proof(journey: Journey) -> None:
    succeeded(journey.proved, "audit prove")  # the untouched folder is whole
    folder = journey.proofs.parent / "edited"
    shutil.copytree(journey.proofs, folder)
    index = json.loads((folder / "index.json").read_text())
    path = next(folder / e["file"] for e in index["contributions"]
                if e["kind"] == "exclusion" and json.loads((folder / e["file"]).read_text())["leaves"])
    proof = json.loads(path.read_text())
    leaf = proof["leaves"][0]["commitment"]
    proof["leaves"][0]["commitment"] = leaf[:-1] + ("0" if leaf[-1] != "0" else "1")
    path.write_text(json.dumps(proof))

    result = journey.verify(folder)

    one_clear_line(result, path.name, "does not hold")
