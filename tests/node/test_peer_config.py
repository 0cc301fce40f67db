"""NodeConfig: TOML, environment and flags, in that order of precedence; clear errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from node.config import ENV_PREFIX, NodeConfig, load_config, to_toml
from node.errors import ConfigError


def test_precedence_file_then_env_then_flag(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('local_steps = 7\nmerge = "median"\nfan_out = 2\ndata_dir = "hospital"\n')

    config = load_config(
        path,
        overrides={"fan_out": 5, "codec": None},
        environ={"MEDGOSSIP_MERGE": "krum", "MEDGOSSIP_BOOTSTRAP": "/ip4/127.0.0.1/tcp/1/p2p/A, /ip4/127.0.0.1/tcp/2/p2p/B"},
    )

    assert config.local_steps == 7  # file
    assert config.merge == "krum"  # env beats file
    assert config.fan_out == 5  # flag beats file
    assert config.codec == "fp32"  # None flag = not given
    assert config.bootstrap == ("/ip4/127.0.0.1/tcp/1/p2p/A", "/ip4/127.0.0.1/tcp/2/p2p/B")
    assert config.data_dir == tmp_path / "hospital"  # relative to the file


def test_round_trip_through_toml(tmp_path: Path) -> None:
    config = NodeConfig(
        key_file=tmp_path / "k", data_dir=tmp_path / "d", checkpoint_dir=tmp_path / "c", listen=("/ip4/127.0.0.1/tcp/4001",), rounds=3, lr=0.1,
        eval_data=tmp_path / "test", codec="topk", topk_fraction=0.05,
    )
    path = tmp_path / "node.toml"
    path.write_text(to_toml(config))

    assert load_config(path, environ={}) == config


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('merge = "average"\n', "merge must be one of"),
        ('codec = "zip"\n', "codec must be one of"),
        ("local_steps = 0\n", "local_steps"),
        ("topk_fraction = 2.0\n", "topk_fraction"),
        ('local_stepz = 3\n', "unknown field(s)"),
        ('local_steps = "many"\n', "local_steps"),
        ("local_steps = [\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text)

    with pytest.raises(ConfigError, match=None) as info:
        load_config(path, environ={})

    assert needle in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


# --- typed fields: bool from every source, every field through every source -----------

# One value per field, none of them the default: a new field must add its own here.
SAMPLE: dict[str, object] = {
    "key_file": Path("/keys/node.key"),
    "data_dir": Path("/data/hospital"),
    "checkpoint_dir": Path("/var/ckpt"),
    "devnet": Path("/chain/devnet.json"),
    "rpc_url": "http://127.0.0.1:8545",
    "contract": "0x00000000000000000000000000000000000000aa",
    "network": Path("/chain/network.json"),
    "deployment_block": 1234,
    "listen": ("/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4002"),
    "announce": ("/ip4/198.18.0.11/tcp/4001",),
    "bootstrap": ("/ip4/10.0.0.1/tcp/1/p2p/A",),
    "mdns": True,
    "network_id": "consortium-7",
    "model": "resnet18",
    "image_size": 16,
    "num_classes": 3,
    "genesis_seed": 11,
    "seed": 12,
    "local_steps": 13,
    "batch_size": 14,
    "lr": 0.125,
    "rounds": 15,
    "fan_out": 2,
    "pull_wait": 2.5,
    "merge": "trimmed-mean",
    "norm_bound": 1.5,
    "norm_refuse": 6.0,
    "codec": "topk",
    "topk_fraction": 0.25,
    "dp_noise_multiplier": 1.5,
    "dp_max_grad_norm": 0.75,
    "dp_delta": 1e-6,
    "holdout_fraction": 0.3,
    "eval_every": 3,
    "eval_data": Path("/data/test"),
    "linger": -1.0,
    "keep_payloads": 4,
    "metrics_port": 9100,
    "chain_poll": 0.5,
    "max_unrecorded": 3,
}


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_the_sample_sets_every_field_away_from_its_default() -> None:
    defaults = NodeConfig()

    assert set(SAMPLE) == {f.name for f in fields(NodeConfig)}
    assert all(getattr(defaults, name) != value for name, value in SAMPLE.items())


def test_every_field_round_trips_through_toml(tmp_path: Path) -> None:
    config = NodeConfig(**SAMPLE)  # type: ignore[arg-type]
    path = tmp_path / "node.toml"
    path.write_text(to_toml(config))

    assert load_config(path, environ={}) == config


def test_every_field_round_trips_through_the_environment() -> None:
    environ = {f"{ENV_PREFIX}{name.upper()}": _text(value) for name, value in SAMPLE.items()}

    assert load_config(None, environ=environ) == NodeConfig(**SAMPLE)  # type: ignore[arg-type]


def _run_start(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> NodeConfig:
    """Run `medgossip node start ARGS` up to the config it would start a peer with."""
    from typer.testing import CliRunner

    from node.cli import peer

    built: list[NodeConfig] = []
    monkeypatch.setattr(
        peer, "_start", lambda config, verbose, **overrides: built.append(load_config(config, overrides, environ={}))
    )
    result = CliRunner().invoke(peer.app, ["start", *args])
    assert result.exit_code == 0, result.output
    return built[0]


def test_every_field_round_trips_through_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    args: list[str] = []
    for name, value in SAMPLE.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            for item in value:
                args += [flag, item]
        else:
            args += [flag, str(value)]

    assert _run_start(monkeypatch, args) == NodeConfig(**SAMPLE)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False)])
def test_bool_from_toml(tmp_path: Path, text: str, expected: bool) -> None:
    path = tmp_path / "node.toml"
    path.write_text(f"mdns = {text}\n")

    assert load_config(path, environ={}).mdns is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("false", False), ("0", False), ("no", False), ("off", False), ("False", False),
     ("true", True), ("1", True), ("yes", True), ("on", True), (" YES ", True)],
)
def test_bool_from_the_environment(text: str, expected: bool) -> None:
    assert load_config(None, environ={f"{ENV_PREFIX}MDNS": text}).mdns is expected


@pytest.mark.parametrize(("args", "expected"), [([], False), (["--mdns"], True), (["--no-mdns"], False)])
def test_bool_from_the_command_line(monkeypatch: pytest.MonkeyPatch, args: list[str], expected: bool) -> None:
    assert _run_start(monkeypatch, args).mdns is expected


def test_a_flag_turns_off_what_the_file_turned_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("mdns = true\n")

    assert _run_start(monkeypatch, ["--config", str(path)]).mdns is True
    assert _run_start(monkeypatch, ["--config", str(path), "--no-mdns"]).mdns is False


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('mdns = "maybe"\n', "'mdns'"),
        ("mdns = 1\n", "'mdns'"),
        ("local_steps = true\n", "'local_steps'"),
        ("local_steps = 2.5\n", "'local_steps'"),
        ("network_id = 5\n", "'network_id'"),
        ("lr = [1]\n", "'lr'"),
    ],
)
def test_values_of_the_wrong_type_are_refused(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text)

    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})

    assert needle in str(info.value)


def test_bad_bool_in_the_environment_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="MDNS|mdns"):
        load_config(None, environ={f"{ENV_PREFIX}MDNS": "maybe"})


def test_merge_rules_and_codecs_come_from_their_registries() -> None:
    from node.codec import CODECS
    from node.merge import MERGE_RULES

    help_of = {f.name: f.metadata["help"] for f in fields(NodeConfig)}
    for name in MERGE_RULES:
        assert NodeConfig(merge=name).merge == name
        assert name in help_of["merge"]
    for name in CODECS:
        assert NodeConfig(codec=name).codec == name
        assert name in help_of["codec"]
