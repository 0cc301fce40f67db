"""Pure aggregation rules over model updates: the math behind ``node.merge``.

Every function here is synchronous, deterministic and free of I/O, so the peer can run
it off the event loop (``trio.to_thread.run_sync``) and tests can check it by hand.

An *update* is a mapping ``name -> torch.Tensor`` (a state dict or a delta). All
updates passed to one call must carry the same names with the same shapes and dtypes;
otherwise an :class:`IncompatibleUpdates` is raised, naming the first offending tensor.

Numerics: floating tensors are combined in at least float32 (half / bfloat16 are
upcast, float64 stays float64) and the result is cast back to the input dtype.
Non-floating tensors (integer buffers such as step counters, bool masks) are not
averaged: the result takes the value of the first update.

Rules (Flower's ``aggregate.py`` is the model):

- :func:`weighted_mean` -- FedAvg: the mean weighted by sample count.
- :func:`coordinate_median` -- coordinate-wise median (mean of the two middle values
  when the number of updates is even, like ``numpy.median``).
- :func:`trimmed_mean` -- per coordinate, drop the ``floor(beta * n)`` largest and the
  same number of smallest values (at least one each when ``beta > 0`` and ``n >= 3``),
  average the rest (Yin et al. 2018).
- :func:`krum` -- (multi-)Krum (Blanchard et al. 2017), see its docstring.

Norms: :func:`l2_norm` of an update (its floating tensors as one vector) and
:func:`clip_norm`, which scales an update down to a given L2 norm (a step bound).

The robust rules (median, trimmed mean, Krum) deliberately ignore sample counts: the
count is self-reported, and weighting by it would let one peer buy influence.

Errors (all are ``ValueError`` as well as ``node.errors.NodeError``)::

    AggregationError                 base: the inputs cannot be aggregated
    ├── NoUpdates                    the list of updates is empty
    ├── IncompatibleUpdates          names, shapes or dtypes differ between updates
    └── InvalidAggregationParameter  weights, beta, f or m out of range
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from node.errors import NodeError

__all__ = [
    "AggregationError",
    "IncompatibleUpdates",
    "InvalidAggregationParameter",
    "NoUpdates",
    "TensorUpdate",
    "coordinate_median",
    "is_finite",
    "krum",
    "krum_select",
    "trimmed_mean",
    "weighted_mean",
]

TensorUpdate = Mapping[str, Tensor]
"""One update: tensor name -> tensor (a state dict or a delta)."""


class AggregationError(NodeError, ValueError):
    """The given updates cannot be aggregated with the given parameters."""


class NoUpdates(AggregationError):
    """An aggregation was asked for over an empty list of updates."""


class IncompatibleUpdates(AggregationError):
    """Updates disagree on tensor names, shapes or dtypes."""


class InvalidAggregationParameter(AggregationError):
    """A weight, ``beta``, ``f`` or ``m`` is out of its documented range."""


# --- helpers ----------------------------------------------------------------------


def _check_compatible(updates: Sequence[TensorUpdate]) -> None:
    """Raise unless ``updates`` is non-empty and all share names, shapes and dtypes."""
    if len(updates) == 0:
        raise NoUpdates("cannot aggregate an empty list of updates")
    reference = updates[0]
    names = set(reference)
    for index, update in enumerate(updates[1:], start=1):
        other = set(update)
        if other != names:
            missing = sorted(names - other)
            extra = sorted(other - names)
            raise IncompatibleUpdates(
                f"update {index} has different tensor names than update 0 "
                f"(missing {missing[:5]}, unexpected {extra[:5]})"
            )
        for name in reference:
            expected, got = reference[name], update[name]
            if got.shape != expected.shape:
                raise IncompatibleUpdates(
                    f"tensor {name!r}: update {index} has shape {tuple(got.shape)}, "
                    f"update 0 has {tuple(expected.shape)}"
                )
            if got.dtype != expected.dtype:
                raise IncompatibleUpdates(
                    f"tensor {name!r}: update {index} has dtype {got.dtype}, "
                    f"update 0 has {expected.dtype}"
                )


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least float32: half and bfloat16 are upcast, float64 is kept."""
    return torch.promote_types(dtype, torch.float32)


def _stack(updates: Sequence[TensorUpdate], name: str) -> Tensor:
    """Stack one floating tensor of every update along a new leading axis."""
    dtype = _math_dtype(updates[0][name].dtype)
    return torch.stack([update[name].detach().to(dtype) for update in updates])


def _combine(
    updates: Sequence[TensorUpdate], rule: Callable[[Tensor], Tensor]
) -> dict[str, Tensor]:
    """Apply ``rule`` (``[n, *shape]`` stacked tensor -> ``shape``) to float tensors."""
    result: dict[str, Tensor] = {}
    for name, first in updates[0].items():
        if first.is_floating_point():
            result[name] = rule(_stack(updates, name)).to(first.dtype)
        else:
            result[name] = first.detach().clone()
    return result


def _sorted_slice_mean(stacked: Tensor, lo: int, hi: int) -> Tensor:
    """Mean over the sorted leading axis, of the entries ``lo`` to ``hi`` (exclusive)."""
    ordered, _ = torch.sort(stacked, dim=0)
    return ordered[lo:hi].mean(dim=0)


def is_finite(update: TensorUpdate) -> bool:
    """True when no floating tensor of ``update`` holds a NaN or an infinity.

    A single NaN poisons every rule here (even the median), so callers drop such
    updates before aggregating (``node.merge`` does).
    """
    return all(
        bool(torch.isfinite(tensor).all())
        for tensor in update.values()
        if tensor.is_floating_point()
    )


# --- rules ------------------------------------------------------------------------


def weighted_mean(
    updates: Sequence[TensorUpdate], weights: Sequence[float]
) -> dict[str, Tensor]:
    """FedAvg: ``sum_i w_i * u_i / sum_i w_i`` per tensor.

    ``weights`` (usually sample counts) must be finite, non-negative, one per update,
    and not all zero. A zero weight excludes that update.
    """
    _check_compatible(updates)
    if len(weights) != len(updates):
        raise InvalidAggregationParameter(
            f"got {len(weights)} weights for {len(updates)} updates"
        )
    values = [float(w) for w in weights]
    if any(not math.isfinite(w) or w < 0 for w in values):
        raise InvalidAggregationParameter(
            f"weights must be finite and non-negative, got {values}"
        )
    total = math.fsum(values)
    if total <= 0:
        raise InvalidAggregationParameter("weights must not all be zero")
    fractions = [w / total for w in values]

    def rule(stacked: Tensor) -> Tensor:
        shape = (len(fractions),) + (1,) * (stacked.dim() - 1)
        scale = torch.tensor(fractions, dtype=stacked.dtype).reshape(shape)
        return (stacked * scale).sum(dim=0)

    return _combine(updates, rule)


def coordinate_median(updates: Sequence[TensorUpdate]) -> dict[str, Tensor]:
    """Coordinate-wise median; the mean of the two middle values when ``n`` is even.

    Breaks down only when half the updates or more are adversarial.
    """
    _check_compatible(updates)
    n = len(updates)
    lo, hi = (n - 1) // 2, n // 2 + 1

    def rule(stacked: Tensor) -> Tensor:
        return _sorted_slice_mean(stacked, lo, hi)

    return _combine(updates, rule)


def trimmed_mean(updates: Sequence[TensorUpdate], beta: float) -> dict[str, Tensor]:
    """Coordinate-wise trimmed mean.

    Per coordinate, the ``k = floor(beta * n)`` largest and ``k`` smallest values are
    dropped and the remaining ``n - 2k >= 1`` are averaged; whenever trimming is asked
    for (``beta > 0``) and ``n >= 3``, ``k`` is at least 1, so a merge of 3 or 4 updates
    (every merge of a small consortium) still drops one at each end. ``beta`` is in
    ``[0, 0.5)``; ``beta = 0`` is the plain mean. Tolerates up to ``k`` adversarial updates.
    """
    if not (isinstance(beta, (int, float)) and 0 <= beta < 0.5):
        raise InvalidAggregationParameter(f"beta must be in [0, 0.5), got {beta!r}")
    _check_compatible(updates)
    n = len(updates)
    k = int(math.floor(beta * n))
    if beta > 0 and n >= 3:
        k = max(k, 1)

    def rule(stacked: Tensor) -> Tensor:
        return _sorted_slice_mean(stacked, k, n - k)

    return _combine(updates, rule)


def l2_norm(update: TensorUpdate) -> float:
    """The L2 norm of an update's floating tensors taken as one vector."""
    total = 0.0
    for tensor in update.values():
        if tensor.is_floating_point():
            total += float(torch.sum(tensor.detach().to(torch.float32) ** 2))
    return math.sqrt(total)


def clip_norm(update: TensorUpdate, bound: float) -> tuple[dict[str, Tensor], bool]:
    """The update scaled down to L2 norm ``bound`` if it is larger; (update, clipped?)."""
    if not (isinstance(bound, (int, float)) and bound > 0):
        raise InvalidAggregationParameter(f"norm bound must be > 0, got {bound!r}")
    norm = l2_norm(update)
    if norm <= bound:
        return dict(update), False
    factor = bound / norm
    return {k: (t * factor if t.is_floating_point() else t) for k, t in update.items()}, True


def _flatten(update: TensorUpdate, names: Sequence[str]) -> Tensor:
    """All floating tensors of ``update`` as one float32 vector, in ``names`` order."""
    parts = [update[name].detach().reshape(-1).to(torch.float32) for name in names]
    if not parts:
        return torch.zeros(0, dtype=torch.float32)
    return torch.cat(parts)


def _krum_effective_f(n: int, f: int) -> int:
    """The ``f`` actually used: Krum needs ``n >= 2f + 3``; else the largest that fits."""
    if n >= 2 * f + 3:
        return f
    return max(0, (n - 3) // 2)


def krum_select(updates: Sequence[TensorUpdate], f: int, m: int = 1) -> list[int]:
    """Indices of the ``m`` updates (multi-)Krum selects, best score first.

    Score of update ``i`` = sum of squared Euclidean distances (over all floating
    tensors, flattened once per update) to its ``n - f - 2`` closest other updates.

    Fallbacks, so a peer with few neighbours still merges instead of failing:

    - Krum's guarantee needs ``n >= 2f + 3``. With fewer updates, ``f`` is lowered to
      ``max(0, (n - 3) // 2)``, the largest value the guarantee holds for.
    - Each score uses at least one neighbour (``n = 2`` gives both the same score) and
      none when ``n = 1``.
    - ``m`` is capped at ``n - f`` (after lowering ``f``): never select more updates
      than are assumed honest.
    - Ties are broken by input order, so when nothing can be told apart the earliest
      updates win; a peer that lists its own update first falls back to itself.
    """
    if isinstance(f, bool) or not isinstance(f, int) or f < 0:
        raise InvalidAggregationParameter(f"f must be an integer >= 0, got {f!r}")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise InvalidAggregationParameter(f"m must be an integer >= 1, got {m!r}")
    _check_compatible(updates)
    n = len(updates)
    f_used = _krum_effective_f(n, f)
    m_used = min(m, n - f_used)
    if n == 1:
        return [0]
    neighbours = max(1, n - f_used - 2)

    names = [name for name, t in updates[0].items() if t.is_floating_point()]
    flat = torch.stack([_flatten(update, names) for update in updates])
    # Exact pairwise squared distances (no ||a||^2 + ||b||^2 - 2ab cancellation).
    distances = torch.stack([((flat - flat[i]) ** 2).sum(dim=1) for i in range(n)])
    scores: list[float] = []
    for i in range(n):
        others = torch.cat([distances[i, :i], distances[i, i + 1 :]])
        closest, _ = torch.topk(others, neighbours, largest=False)
        scores.append(float(closest.to(torch.float64).sum()))
    # sorted() is stable: equal scores keep input order.
    return sorted(range(n), key=lambda i: scores[i])[:m_used]


def krum(updates: Sequence[TensorUpdate], f: int, m: int = 1) -> dict[str, Tensor]:
    """(Multi-)Krum: the unweighted mean of the updates :func:`krum_select` picks.

    ``m = 1`` is Krum (the single most central update, returned as is); ``m > 1`` is
    multi-Krum. ``f`` is the number of adversarial updates to tolerate. See
    :func:`krum_select` for the scoring and the fallbacks when ``n < 2f + 3``.
    Non-floating tensors take the value of the first update of the input, like every
    rule here.
    """
    chosen = krum_select(updates, f, m)
    selected = [updates[i] for i in chosen]
    combined = weighted_mean(selected, [1.0] * len(selected))
    first = updates[0]
    for name, tensor in first.items():
        if not tensor.is_floating_point():
            combined[name] = tensor.detach().clone()
    return combined
