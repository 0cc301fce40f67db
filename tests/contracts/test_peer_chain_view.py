"""The peer's view of the chain: the merge normaliser's mean sample count (eth-tester)."""

from __future__ import annotations

from collections.abc import Callable

from contracts.ledger import AuditLedger
from node.peer import ChainView


def _record(node: AuditLedger, tag: int, samples: int) -> None:
    node.record_contribution(bytes([tag]) * 32, bytes(32), tag, samples, bytes([tag]) * 32, 0.0)


def test_registry_and_mean_sample_count_are_read_only_on_refresh(
    admin: AuditLedger, registered_node: Callable[[], AuditLedger]
) -> None:
    first, second = registered_node(), registered_node()
    view = ChainView(admin)
    assert view.active_nodes() == 1  # nothing read yet
    view.refresh()
    assert view.mean_sample_count(default=7) == 7  # nothing recorded: the caller's count

    _record(first, 1, 10)
    _record(second, 2, 20)
    _record(first, 3, 60)
    assert view.mean_sample_count(default=7) == 7  # not refreshed yet: no chain call here
    view.refresh()
    assert view.mean_sample_count(default=7) == 30

    _record(second, 4, 50)
    view.refresh()
    view.refresh()  # a second refresh reads nothing twice
    assert view.mean_sample_count(default=7) == 35
    assert view.active_nodes() == 2
