"""How a peer merges the updates it pulled: one small strategy interface.

Modelled on Flower's ``flwr/server/strategy``: :class:`MergeStrategy` says what a merge
rule is, each rule is a small frozen dataclass holding its parameters, and the math
lives in the pure functions of :mod:`node.aggregate`. A strategy is chosen by name from
the node's configuration with :func:`strategy_from_name`; :data:`MERGE_RULES` lists them.

The peer builds one :class:`Update` per verified delta (and one for its own), then calls
``strategy.merge(updates)`` off the event loop. Updates holding a NaN or an infinity are
dropped (and logged with their source) before the rule runs, because one such value
poisons every rule, the median included. Every other problem raises an
:class:`~node.aggregate.AggregationError` subclass (also a ``ValueError``).

- ``mean``: :class:`MeanStrategy`, the mean weighted by sample count (FedAvg);
- ``median``: :class:`MedianStrategy`, the coordinate-wise median;
- ``trimmed-mean``: :class:`TrimmedMeanStrategy`, trimmed mean (``beta=0.2``);
- ``krum``: :class:`KrumStrategy`, (multi-)Krum (``f=1``, ``m=1``);
- ``multi-krum``: :class:`MultiKrumStrategy`, the mean of the ``n - f`` most central
  updates (``f=2``).

Only ``mean`` uses :attr:`Update.weight` (:attr:`MergeStrategy.weighted`); the robust
rules ignore counts, and the peer scales their step by the number of updates, never by
self-declared counts.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar

from torch import Tensor

from node.aggregate import (
    AggregationError,
    IncompatibleUpdates,
    InvalidAggregationParameter,
    NoUpdates,
    coordinate_median,
    is_finite,
    krum,
    trimmed_mean,
    weighted_mean,
)

__all__ = [
    "MERGE_RULES",
    "STRATEGIES",
    "AggregationError",
    "IncompatibleUpdates",
    "InvalidAggregationParameter",
    "KrumStrategy",
    "MeanStrategy",
    "MedianStrategy",
    "MergeStrategy",
    "MultiKrumStrategy",
    "NoUpdates",
    "TrimmedMeanStrategy",
    "UnknownStrategy",
    "Update",
    "strategy_from_name",
]

log = logging.getLogger(__name__)


class UnknownStrategy(InvalidAggregationParameter):
    """A merge rule name that is not one of :data:`STRATEGIES`."""


@dataclass(frozen=True, eq=False)
class Update:
    """One model update offered to a merge.

    ``tensors``: name -> tensor (all updates of one merge share names, shapes, dtypes);
    ``weight``: the sample count behind it (used by ``mean`` only);
    ``source``: who produced it (a peer ID, or the local node), for logs only.

    Compared by identity (``eq=False``): tensors have no single truth value.
    """

    tensors: Mapping[str, Tensor]
    weight: float
    source: str


class MergeStrategy(ABC):
    """A merge rule: many updates in, one set of tensors out.

    Subclasses set :attr:`name` and implement :meth:`_aggregate`; :meth:`merge` does the
    checks shared by every rule. Strategies are immutable and safe to share between
    threads.
    """

    name: ClassVar[str]
    weighted: ClassVar[bool] = False
    """Does the rule use :attr:`Update.weight`? (Then its step is scaled by weight too.)"""

    def merge(self, updates: Sequence[Update]) -> dict[str, Tensor]:
        """Merge ``updates`` into new tensors (the inputs are never modified).

        A single update merges to (a copy of) itself. Updates with non-finite values
        are dropped first. Raises :class:`NoUpdates` when nothing is left,
        :class:`IncompatibleUpdates` when names, shapes or dtypes differ.
        """
        if len(updates) == 0:
            raise NoUpdates(f"{self.name}: nothing to merge")
        usable = [u for u in updates if is_finite(u.tensors)]
        if len(usable) < len(updates):
            dropped = [u.source for u in updates if u not in usable]
            log.warning(
                "merge %s: dropped %d update(s) with non-finite values from %s",
                self.name,
                len(dropped),
                ", ".join(dropped),
            )
        if not usable:
            raise NoUpdates(f"{self.name}: every update held non-finite values")
        return self._aggregate(usable)

    @abstractmethod
    def _aggregate(self, updates: Sequence[Update]) -> dict[str, Tensor]:
        """Apply the rule to a non-empty list of finite updates."""


@dataclass(frozen=True)
class MeanStrategy(MergeStrategy):
    """FedAvg: the mean of the updates weighted by their sample counts."""

    name: ClassVar[str] = "mean"
    weighted: ClassVar[bool] = True

    def _aggregate(self, updates: Sequence[Update]) -> dict[str, Tensor]:
        return weighted_mean([u.tensors for u in updates], [u.weight for u in updates])


@dataclass(frozen=True)
class MedianStrategy(MergeStrategy):
    """Coordinate-wise median (robust while fewer than half the updates are bad)."""

    name: ClassVar[str] = "median"

    def _aggregate(self, updates: Sequence[Update]) -> dict[str, Tensor]:
        return coordinate_median([u.tensors for u in updates])


@dataclass(frozen=True)
class TrimmedMeanStrategy(MergeStrategy):
    """Coordinate-wise mean after dropping the ``beta`` fraction at each end."""

    name: ClassVar[str] = "trimmed-mean"
    beta: float = 0.2

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, (int, float)) and 0 <= self.beta < 0.5):
            raise InvalidAggregationParameter(
                f"trimmed-mean: beta must be in [0, 0.5), got {self.beta!r}"
            )

    def _aggregate(self, updates: Sequence[Update]) -> dict[str, Tensor]:
        return trimmed_mean([u.tensors for u in updates], self.beta)


@dataclass(frozen=True)
class KrumStrategy(MergeStrategy):
    """(Multi-)Krum: average of the ``m`` most central updates, tolerating ``f`` bad.

    With fewer than ``2f + 3`` updates ``f`` is lowered (see
    :func:`node.aggregate.krum_select`), so small neighbourhoods still merge.
    """

    name: ClassVar[str] = "krum"
    f: int = 1
    m: int = 1

    def __post_init__(self) -> None:
        for label, value, low in (("f", self.f, 0), ("m", self.m, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidAggregationParameter(
                    f"krum: {label} must be an integer >= {low}, got {value!r}"
                )

    def _aggregate(self, updates: Sequence[Update]) -> dict[str, Tensor]:
        return krum([u.tensors for u in updates], self.f, self.m)


@dataclass(frozen=True)
class MultiKrumStrategy(MergeStrategy):
    """Multi-Krum: the mean of every update but the ``f`` least central (``m = n - f``).

    In ``bench/byzantine.py``, where every peer merges every update of a round at once,
    it kept honest accuracy at the attack-free level under every attack; with real
    asynchronous peers merging 1-4 updates at a time it leaves out different updates on
    different peers (see the README's benchmarks). ``f`` is lowered when there are fewer
    than ``2f + 3`` updates, so a merge of 4 updates is a plain mean: it takes 5 updates
    to leave one out.
    """

    name: ClassVar[str] = "multi-krum"
    f: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.f, bool) or not isinstance(self.f, int) or self.f < 0:
            raise InvalidAggregationParameter(f"multi-krum: f must be an integer >= 0, got {self.f!r}")

    def _aggregate(self, updates: Sequence[Update]) -> dict[str, Tensor]:
        return krum([u.tensors for u in updates], self.f, m=len(updates))  # capped at n - f


MERGE_RULES: Mapping[str, type[MergeStrategy]] = MappingProxyType(
    {cls.name: cls for cls in (MeanStrategy, MedianStrategy, TrimmedMeanStrategy, KrumStrategy, MultiKrumStrategy)}
)
"""Every merge rule by name, in documentation order: the one list of rule names."""

STRATEGIES: tuple[str, ...] = tuple(MERGE_RULES)
"""Valid names for :func:`strategy_from_name`, in documentation order."""


def strategy_from_name(name: str, **params: Any) -> MergeStrategy:
    """Build the strategy called ``name`` (case-insensitive, ``_`` accepted for ``-``).

    ``params`` are the rule's parameters (``beta`` for trimmed-mean, ``f`` and ``m``
    for krum). Raises :class:`UnknownStrategy` for an unknown name and
    :class:`InvalidAggregationParameter` for an unknown or out-of-range parameter.
    """
    key = name.strip().lower().replace("_", "-")
    cls = MERGE_RULES.get(key)
    if cls is None:
        raise UnknownStrategy(
            f"unknown merge rule {name!r}; valid rules: {', '.join(STRATEGIES)}"
        )
    accepted = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unexpected = sorted(set(params) - accepted)
    if unexpected:
        allowed = ", ".join(sorted(accepted)) or "none"
        raise InvalidAggregationParameter(
            f"merge rule {key!r} does not take {', '.join(unexpected)} "
            f"(parameters: {allowed})"
        )
    return cls(**params)
