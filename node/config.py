"""A peer's configuration: a TOML file, every field overridable.

Precedence, lowest to highest: the dataclass default, the TOML file, the environment
(`MEDGOSSIP_<FIELD>` upper-cased, e.g. `MEDGOSSIP_LOCAL_STEPS=20`), a command-line flag.
Lists in the environment are comma-separated; booleans there are true/false, 1/0,
yes/no or on/off. Relative paths in the file are relative to the file's folder, so a
config folder can be moved as a whole.

Values are converted by each field's real type (``field_types``), never by the text of
its annotation. The valid merge rules and codecs are the registries of ``node.merge`` and
``node.codec``; they are imported when a config is checked, not with this module, so
that the command line starts without importing torch.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from node.errors import ConfigError

ENV_PREFIX = "MEDGOSSIP_"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _f(default: Any, help_: str) -> Any:
    return field(default=default, metadata={"help": help_})


@dataclass(frozen=True)
class NodeConfig:
    """Everything one peer process needs to know. Field docs are the README's table."""

    key_file: Path = _f(Path("node.key"), "file with the node's hex secp256k1 secret (libp2p identity = Ethereum account); created if missing")
    data_dir: Path = _f(Path("data"), 'an ingested data folder (`medgossip data ingest`), holding manifest.json')
    checkpoint_dir: Path = _f(Path("checkpoint"), 'where the model, codec residual, journal of contributions and status.json live')
    devnet: Path | None = _f(None, 'a devnet.json to take rpc_url and contract from')
    rpc_url: str = _f("", 'Ethereum JSON-RPC URL of the ledger chain (overrides devnet)')
    contract: str = _f("", 'AuditLedger contract address (overrides devnet)')
    network: Path | None = _f(None, 'a network.json (from `admin deploy`) to take rpc_url, contract and deployment_block from')
    deployment_block: int = _f(0, "the block AuditLedger was deployed in: the peer reads the chain's events from there, not from block 0 (set by `node init --network`)")
    listen: tuple[str, ...] = _f(("/ip4/127.0.0.1/tcp/0",), 'libp2p multiaddrs to listen on')
    announce: tuple[str, ...] = _f((), 'multiaddrs to advertise instead of the listen addresses (e.g. the public address of a host listening on 0.0.0.0)')
    bootstrap: tuple[str, ...] = _f((), 'multiaddrs (with /p2p/ID) of peers to dial at start')
    mdns: bool = _f(False, 'discover peers on the local network with mDNS')
    network_id: str = _f("", 'GossipSub topic namespace (default: chain id + contract address)')
    model: str = _f("small-cnn", 'model architecture: small-cnn or resnet18')
    image_size: int = _f(8, 'input image side in pixels (images are resized to it)')
    num_classes: int = _f(10, 'number of label classes')
    genesis_seed: int = _f(0, 'seed of the genesis model every peer builds; its hash must match the chain')
    seed: int = _f(0, "this peer's own seed (held-out split, batch order)")
    local_steps: int = _f(10, 'local SGD steps per round (E)')
    batch_size: int = _f(32, 'local batch size')
    lr: float = _f(0.05, 'local SGD learning rate')
    rounds: int = _f(0, 'stop after this many rounds (0: run until stopped)')
    fan_out: int = _f(8, "peers pulled from at once and merged per round (k); each peer's deltas are all merged once, sooner or later")
    pull_wait: float = _f(0.0, "seconds to wait for a peer delta when none is ready at merge time (0: merge alone, no barrier)")
    merge: str = _f("mean", 'merge rule: mean (weighted by capped sample count), multi-krum (mean of all but the f=2 least central updates), median, trimmed-mean, krum')
    norm_bound: float = _f(1.0, "a peer's update with an L2 norm over norm_bound x its reference norm (the median norm of the records around it on chain) is clipped to it; 0 turns the bound off")
    norm_refuse: float = _f(5.0, "a peer's update with an L2 norm over norm_refuse x its reference norm is refused and counted; 0 turns refusal off")
    codec: str = _f("fp32", 'delta codec: fp32, fp16, int8, topk')
    topk_fraction: float = _f(0.1, 'fraction of coordinates sent by the topk codec (error feedback keeps the rest)')
    dp_noise_multiplier: float = _f(0.0, 'DP-SGD noise multiplier (0 disables DP-SGD)')
    dp_max_grad_norm: float = _f(1.0, 'DP-SGD per-sample clipping norm')
    dp_delta: float = _f(1e-5, 'DP delta for the epsilon accounting')
    holdout_fraction: float = _f(0.2, 'fraction of local subjects held out for evaluation')
    eval_every: int = _f(1, "evaluate on the held-out split (and eval_data) every this many rounds")
    eval_data: Path | None = _f(None, "optional extra ingested folder to also report accuracy on (the demo's common test set)")
    linger: float = _f(0.0, 'seconds to keep serving payloads after the last round (-1: until stopped)')
    keep_payloads: int = _f(0, "how many of its own latest payloads a peer keeps on disk and serves (0: all, so a hospital joining late can fetch the whole history)")
    metrics_port: int = _f(0, 'port of a Prometheus endpoint on 127.0.0.1 (0: none)')
    chain_poll: float = _f(1.0, 'seconds between polls for consent withdrawals and queued records')
    max_unrecorded: int = _f(8, "with this many trained contributions waiting to be recorded on chain, the peer stops training (it still merges and serves) until fewer wait (0: no bound)")

    def __post_init__(self) -> None:
        from node.codec import CODECS  # imports torch: only when a config is built
        from node.merge import MERGE_RULES

        if self.merge not in MERGE_RULES:
            raise ConfigError(f"merge must be one of {', '.join(MERGE_RULES)}, not {self.merge!r}")
        if self.codec not in CODECS:
            raise ConfigError(f"codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if self.local_steps < 1 or self.batch_size < 1 or self.fan_out < 0 or self.eval_every < 1:
            raise ConfigError("local_steps, batch_size and eval_every must be >= 1 and fan_out >= 0")
        if self.keep_payloads < 0:
            raise ConfigError("keep_payloads must be >= 0 (0 keeps every payload)")
        if self.deployment_block < 0:
            raise ConfigError("deployment_block must be >= 0 (the block AuditLedger was deployed in)")
        if self.max_unrecorded < 0:
            raise ConfigError("max_unrecorded must be >= 0 (0: no bound)")
        if not 0 < self.topk_fraction <= 1:
            raise ConfigError("topk_fraction must be in (0, 1]")
        if not (self.norm_bound == 0 or self.norm_bound >= 1):
            raise ConfigError("norm_bound must be 0 (off) or >= 1 (a multiple of the median recent norm)")
        if not (self.norm_refuse == 0 or self.norm_refuse >= max(self.norm_bound, 1)):
            raise ConfigError("norm_refuse must be 0 (off) or >= norm_bound and >= 1")

    @property
    def dp_enabled(self) -> bool:
        return self.dp_noise_multiplier > 0


@functools.cache
def field_types() -> Mapping[str, Any]:
    """Each NodeConfig field's type as a type object (e.g. ``pathlib.Path | None``)."""
    hints = typing.get_type_hints(NodeConfig)
    return types.MappingProxyType({f.name: hints[f.name] for f in fields(NodeConfig)})


def optional_inner(kind: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(kind, False)``."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return kind, False


def parse_bool(value: Any) -> bool:
    """A TOML boolean, or its text form from the environment or a flag."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true/false, 1/0, yes/no or on/off")


def _convert(kind: Any, value: Any) -> Any:
    inner, optional = optional_inner(kind)
    if optional:
        return None if value is None or value == "" else _convert(inner, value)
    if kind is bool:
        return parse_bool(value)
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a list")
        return tuple(_convert(item, v) for v in value)
    if kind in (int, float):
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected {kind.__name__}")
        return kind(value)
    if kind in (str, Path):
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return kind(value)
    raise TypeError(f"NodeConfig has no converter for {kind!r}")  # a new field type: add one


def _coerce(name: str, value: Any) -> Any:
    """Turn a TOML/env/flag value into the field's type, with a message naming the field."""
    try:
        return _convert(field_types()[name], value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config field {name!r}: cannot use {value!r} ({exc})") from exc


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> NodeConfig:
    """Build a NodeConfig from a TOML file, the environment and explicit overrides.

    `overrides` holds flag values; None means "not given" and is skipped.
    """
    kinds = field_types()
    from_file: dict[str, Any] = {}
    if path is not None:
        try:
            from_file = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        unknown = sorted(set(from_file) - set(kinds))
        if unknown:
            raise ConfigError(f"unknown field(s) in {path}: {', '.join(unknown)}")
    values = {n: _coerce(n, v) for n, v in from_file.items()}
    if path is not None:
        base = Path(path).resolve().parent
        for name, value in values.items():
            if isinstance(value, Path) and not value.is_absolute():
                values[name] = base / value
    env = os.environ if environ is None else environ
    for name in kinds:
        if ENV_PREFIX + name.upper() in env:
            values[name] = _coerce(name, env[ENV_PREFIX + name.upper()])
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    return NodeConfig(**values)


def to_toml(config: NodeConfig) -> str:
    """Write a config back as TOML (the demo writes one per peer)."""
    lines = []
    for name, value in dataclasses.asdict(config).items():
        if value is None:
            continue
        if isinstance(value, (tuple, list)):
            lines.append(f"{name} = [{', '.join(_toml_str(v) for v in value)}]")
        elif isinstance(value, bool):
            lines.append(f"{name} = {'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            lines.append(f"{name} = {value!r}")
        else:
            lines.append(f"{name} = {_toml_str(str(value))}")
    return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = ["ENV_PREFIX", "NodeConfig", "field_types", "load_config", "optional_inner", "parse_bool", "to_toml"]
