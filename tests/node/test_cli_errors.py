"""Every CLI failure a user can cause is one clear line, a non-zero exit, no traceback.

`node start` runs as a real subprocess (it starts trio, imports torch and sets up
logging, as a user's run does); the other commands run in-process. None of these
cases needs a chain: each fails before one would be used, and arguments are checked
before any file or chain is touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from devnet.errors import DevnetNotRunning
from devnet.info import DevnetInfo
from gossip.errors import GossipConfigError
from node.cli._boundary import OneLineErrors
from tests.cli_helpers import Ran, call, one_clear_line, run


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A regular file, where the commands expect a folder (or a folder's parent)."""
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


@pytest.fixture
def binary_key(tmp_path: Path) -> Path:
    path = tmp_path / "binary.key"
    path.write_bytes(bytes(range(256)))
    return path


# --- node start -------------------------------------------------------------------


def test_node_start_key_file_in_a_folder_that_cannot_be_created(tmp_path: Path, a_file: Path) -> None:
    result = run("node", "start", "--key-file", str(a_file / "keys" / "node.key"), cwd=tmp_path)
    one_clear_line(result, "cannot create key file", "folder that exists or can be created")


def test_node_start_binary_key_file(tmp_path: Path, binary_key: Path) -> None:
    result = run("node", "start", "--key-file", str(binary_key), cwd=tmp_path)
    one_clear_line(result, str(binary_key), "is not a key file", "64 hex characters")


def test_node_start_devnet_file_without_contract(tmp_path: Path) -> None:
    complete = DevnetInfo(
        rpc_url="http://127.0.0.1:9", chain_id=31337, contract="0x" + "11" * 20,
        admin_key="0x" + "22" * 32, admin="0x" + "33" * 20, relayer_key="0x" + "44" * 32,
        nodes=(), anvil_pid=None, state_file="state.json", port=9, log_file="anvil.log",
    )
    data = json.loads(complete.to_json())
    del data["contract"]
    devnet_file = tmp_path / "devnet.json"
    devnet_file.write_text(json.dumps(data))
    result = run("node", "start", "--devnet", str(devnet_file),
                 "--key-file", str(tmp_path / "node.key"), cwd=tmp_path)
    one_clear_line(result, str(devnet_file), "contract", "medgossip devnet start")


def test_node_start_config_that_is_not_toml(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("rounds = [\n")
    one_clear_line(run("node", "start", "--config", str(config), cwd=tmp_path), "not valid TOML")


def test_node_start_config_that_is_binary(tmp_path: Path, binary_key: Path) -> None:
    one_clear_line(run("node", "start", "--config", str(binary_key), cwd=tmp_path),
                   str(binary_key), "not valid TOML")


def test_node_start_invalid_setting(tmp_path: Path) -> None:
    result = run("node", "start", "--codec", "zip", cwd=tmp_path)
    one_clear_line(result, "codec must be one of")


# --- node status ------------------------------------------------------------------


def test_node_status_without_status_file(tmp_path: Path) -> None:
    one_clear_line(call("node", "status", "-d", str(tmp_path / "nowhere")),
                   "no status in", "--checkpoint-dir")


def test_node_status_on_garbage(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_bytes(b"\x00\xffnot json{")
    one_clear_line(call("node", "status", "-d", str(tmp_path)), "status.json", "unreadable")


def test_node_status_on_a_partial_status_file(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text(json.dumps({"peer_id": "16Uiu2", "pid": 1, "round": 3}))
    one_clear_line(call("node", "status", "-d", str(tmp_path)), "status.json", "restart the peer")


def test_node_status_on_a_json_list(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text("[1, 2, 3]")
    one_clear_line(call("node", "status", "-d", str(tmp_path)), "status.json")


# --- node init --------------------------------------------------------------------


def test_node_init_into_a_file(a_file: Path) -> None:
    one_clear_line(call("node", "init", "--out", str(a_file)), str(a_file), "is a file", "give a folder")


def test_node_init_below_a_file(a_file: Path) -> None:
    one_clear_line(call("node", "init", "--out", str(a_file / "node")), "cannot use",
                   "Not a directory")


def test_node_init_with_a_binary_key_file(tmp_path: Path, binary_key: Path) -> None:
    binary_key.rename(tmp_path / "node.key")
    one_clear_line(call("node", "init", "--out", str(tmp_path)), "is not a key file")
    assert not (tmp_path / "node.toml").exists()


def test_node_init_with_a_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    (tmp_path / "node.key").write_text("12" * 31 + "\n")  # 31 bytes: one short
    one_clear_line(call("node", "init", "--out", str(tmp_path)), "does not hold a valid key")


def test_node_init_works_and_is_idempotent(tmp_path: Path) -> None:
    first = call("node", "init", "--out", str(tmp_path / "n"))
    second = call("node", "init", "--out", str(tmp_path / "n"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout and "peer ID: 16U" in first.stdout


# --- data ingest ------------------------------------------------------------------


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("path,label\na.dcm,1\n")
    return path


def test_data_ingest_source_missing(tmp_path: Path, labels: Path) -> None:
    one_clear_line(call("data", "ingest", str(tmp_path / "nope"), "--labels", str(labels),
                        "--out", str(tmp_path / "out")), "source not found")


def test_data_ingest_labels_missing(tmp_path: Path) -> None:
    one_clear_line(call("data", "ingest", str(tmp_path), "--labels", str(tmp_path / "nope.csv"),
                        "--out", str(tmp_path / "out")), "labels file not found")


def test_data_ingest_labels_not_text(tmp_path: Path, binary_key: Path) -> None:
    one_clear_line(call("data", "ingest", str(tmp_path), "--labels", str(binary_key),
                        "--out", str(tmp_path / "out")), "cannot read labels file")


def test_data_ingest_output_is_a_file(tmp_path: Path, labels: Path, a_file: Path) -> None:
    one_clear_line(call("data", "ingest", str(tmp_path), "--labels", str(labels),
                        "--out", str(a_file)), "--out", "is a file")


def test_data_ingest_output_below_a_file(tmp_path: Path, labels: Path, a_file: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    result = call("data", "ingest", str(src), "--labels", str(labels), "--out", str(a_file / "out"))
    one_clear_line(result, "cannot use")


# --- arguments before I/O ---------------------------------------------------------


def test_arguments_are_checked_before_any_file_or_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no run/devnet/devnet.json here
    line = one_clear_line(call("consent", "withdraw", "--token", "my-secret-abc"), "consent token")
    assert "my-secret-abc" not in line and "not found" not in line
    one_clear_line(call("consent", "withdraw", "--subject", "0x12", "--node", "node-0"),
                   "--subject must be 64 hex")
    one_clear_line(call("ledger", "query", "--delta", "0x1234"), "--delta must be 64 hex")
    one_clear_line(call("admin", "set-genesis", "--hash", "12"), "--hash must be 64 hex")
    one_clear_line(call("ledger", "query", "--rpc", "http://127.0.0.1:9"), "--rpc and --contract go together")
    one_clear_line(call("ledger", "query", "--rpc", "http://127.0.0.1:9", "--contract", "nope"),
                   "--contract 'nope' is not an Ethereum address")
    one_clear_line(call("ledger", "query", "--node", "0xABCDEFabcdef" + "0" * 28), "EIP-55 checksum")
    one_clear_line(call("admin", "revoke-node", "--address", "0x1234"), "is not an Ethereum address")
    one_clear_line(call("data", "ingest", "nope", "--labels", "nope.csv", "--out", "out",
                        "--label-key", "PatientID"), "--label-key must be one of")
    # with valid arguments the same commands reach the (absent) devnet file
    one_clear_line(call("ledger", "query"), "devnet.json not found", "medgossip devnet start")


# --- the boundary itself ----------------------------------------------------------


def _app(exc: BaseException) -> typer.Typer:
    app = typer.Typer(cls=OneLineErrors, add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def boom() -> None:
        raise exc

    @app.command()
    def fine() -> None:
        typer.echo("ok")

    return app


def _invoke(exc: BaseException) -> tuple[Ran, BaseException | None]:
    result = CliRunner().invoke(_app(exc), ["boom"], env={"COLUMNS": "60"})
    escaped = None if isinstance(result.exception, SystemExit) else result.exception
    return Ran(result.exit_code, result.stdout, result.stderr), escaped


def test_boundary_prints_project_errors_as_one_unwrapped_line() -> None:
    message = "the devnet of [run/devnet] is not running:\nstart it with `medgossip devnet start` " + "x" * 80
    result, escaped = _invoke(DevnetNotRunning(message))
    assert escaped is None
    line = one_clear_line(result, "[run/devnet]", "medgossip devnet start", "x" * 80)
    assert result.returncode == 1 and line.startswith("error: ")


def test_boundary_reports_trio_exception_groups_of_project_errors() -> None:
    group = ExceptionGroup("nursery", [ExceptionGroup("inner", [GossipConfigError("bad listen addr")])])
    result, escaped = _invoke(group)
    assert escaped is None
    one_clear_line(result, "bad listen addr")


def test_boundary_reports_os_errors_with_the_path() -> None:
    result, escaped = _invoke(IsADirectoryError(21, "Is a directory", "/some/where"))
    assert escaped is None
    one_clear_line(result, "/some/where", "Is a directory")


def test_boundary_lets_bugs_through() -> None:
    for bug in (KeyError("peer_id"), ExceptionGroup("nursery", [GossipConfigError("x"), TypeError("y")])):
        _, escaped = _invoke(bug)
        assert escaped is bug


def test_boundary_turns_ctrl_c_into_exit_130() -> None:
    result, escaped = _invoke(KeyboardInterrupt())
    assert escaped is None and result.returncode == 130 and "Traceback" not in result.stderr
