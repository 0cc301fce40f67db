"""NodeConfig: TOML, environment and flags, in that order of precedence; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import NodeConfig, load_config, to_toml
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
