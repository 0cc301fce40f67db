"""medgossip demo (placeholder until its issue lands)."""

from __future__ import annotations


def demo() -> None:
    """Run the demo (not built yet)."""
