"""Jinja2 filters: how the pages write hashes, epsilons and budget fractions.

They return plain strings that the templates then autoescape; none
returns markup, so chain data can never become HTML here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["FILTERS", "epsilon", "percent", "short"]


def short(value: Any, keep: int = 6) -> str:
    """0x1234ab…cdef: enough to tell hashes apart; the page keeps the full value beside it."""
    text = "" if value is None else str(value)
    if len(text) <= 2 + keep + 6:
        return text
    return f"{text[: 2 + keep]}…{text[-4:]}"


def epsilon(value: Any) -> str:
    if value is None:
        return "-"
    number = float(value)
    return "0" if number == 0 else f"{number:.4g}" if number < 1e-3 else f"{number:.4f}".rstrip("0").rstrip(".")


def percent(fraction: Any) -> str:
    if fraction is None:
        return "-"
    return f"{100 * float(fraction):.0f}%"


FILTERS: dict[str, Callable[..., Any]] = {
    "short": short,
    "eps": epsilon,
    "pct": percent,
}
