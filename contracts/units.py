"""Units of the privacy budget, without heavy imports (the CLI reads them for --help).

Epsilon travels on chain as an integer number of micro-epsilon; the conversion itself,
with its checks, is `contracts.ledger.epsilon_to_micros`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_EPSILON_BUDGET", "EPSILON_SCALE"]

EPSILON_SCALE = 1_000_000
"""Epsilon travels on chain as an integer number of micro-epsilons."""

DEFAULT_EPSILON_BUDGET = 10.0
"""A node's lifetime epsilon budget when the admin names none: the upper end of the
single-digit epsilons commonly reported for DP-SGD on medical images, generous enough
for a demo run of DP rounds and still a real bound (a node without DP spends 0)."""
