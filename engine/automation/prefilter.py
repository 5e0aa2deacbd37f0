"""Which subjects a scheduled rule could hold for, as SQL filters for the sweep's scan.

A tick over 100,000 accounts must not read 100,000 contexts to act on a few: the parts of
the rules' conditions that depend only on an invoice's age (`invoice.days_overdue`,
`invoice.days_since_issue`), on its state, and on the account's dunning state are turned
into filters the scan applies (issue-time ranges, and dunning states: engine.system turns them
into sales' scan filters and dunning's customer-id selects). Every other test is unknown here, so the filters keep every subject it
might hold for: they are a superset, and each subject that passes is still evaluated in full
before anything acts.

How: the conditions are evaluated, with three-valued logic (unknown tests are unknown), on
one representative of every (age class, dunning state) cell, where the age classes are the
single days between the rules' numeric constants plus "before" and "after" them; a cell is
kept unless every rule is false on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from engine.automation.ports import SubjectFilter
from engine.rules.conditions import All, AnyOf, Node, Not, Test, normalize, test_value

DAY_PATHS = frozenset({"invoice.days_overdue", "invoice.days_since_issue"})
STATE_PATHS = frozenset({"account.dunning_state", "account.state"})
# What every subject of an invoice sweep has: finalized (unpaid) invoices, `open` to rules.
INVOICE_CONSTANTS = {"invoice.status": "open", "invoice.state": "finalized"}


# Three-valued logic: false < unknown < true; all of them is the least, any the greatest.
_RANK: dict[bool | None, int] = {False: 0, None: 1, True: 2}


def _eval3(node: Node, values: dict[str, Any]) -> bool | None:
    """True, False, or None (unknown: the node reads a path not in `values`)."""
    if isinstance(node, Test):
        return test_value(normalize(values[node.path]), node.op, node.value) if node.path in values else None
    if isinstance(node, All):
        return min((_eval3(n, values) for n in node.items), key=_RANK.__getitem__, default=True)
    if isinstance(node, AnyOf):
        return max((_eval3(n, values) for n in node.items), key=_RANK.__getitem__, default=False)
    assert isinstance(node, Not)
    inner = _eval3(node.item, values)
    return None if inner is None else not inner


def _tests(node: Node) -> list[Test]:
    if isinstance(node, Test):
        return [node]
    if isinstance(node, All | AnyOf):
        return [t for n in node.items for t in _tests(n)]
    assert isinstance(node, Not)
    return _tests(node.item)


def _numbers(value: Any) -> list[Decimal]:
    items = value if isinstance(value, list | tuple) else [value]
    return [v for v in items if isinstance(v, Decimal)]


def _day_window(whens: Sequence[Node]) -> tuple[int, int] | None:
    """[a, b]: every day <= a behaves alike, and every day >= b; None: no age test."""
    constants: list[Decimal] = []
    found = False
    for when in whens:
        for t in _tests(when):
            if t.path in DAY_PATHS:
                found = True
                constants.extend(_numbers(t.value))
    if not found:
        return None
    if not constants:
        return -1, 1
    return math.floor(min(constants)) - 1, math.ceil(max(constants)) + 1


def _midnight(day: datetime, back: int) -> datetime:
    return datetime.combine(day.date() - timedelta(days=back), time(0), tzinfo=UTC)


def _issued_ranges(days: list[int], window: tuple[int, int], now: datetime) \
        -> tuple[tuple[datetime | None, datetime | None], ...]:
    """Issue-time ranges of the invoices whose age (whole UTC days) is in `days`, where the
    window's ends stand for everything beyond them."""
    a, b = window
    today = now.astimezone(UTC)
    ranges: list[tuple[datetime | None, datetime | None]] = []
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and d == runs[-1][1] + 1:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    for lo, hi in runs:
        # age in [lo, hi]  <=>  issued in [midnight(today - hi), midnight(today - lo + 1))
        start = None if hi >= b else _midnight(today, hi)
        end = None if lo <= a else _midnight(today, lo - 1)
        ranges.append((start, end))
    return tuple(ranges)


def scan_filters(for_each: str, whens: Sequence[Node | None], now: datetime,
                 states: set[str], *, active: str) -> list[SubjectFilter] | None:
    """The filters for the sweep's scan (`Records.scan`) that keep every subject one of the
    conditions (`None`: always) could hold for; None when nothing can be filtered.
    `states`: the dunning states that exist (`Records.known_states`); `active`: a customer's
    without a record."""
    nodes = [w for w in whens if w is not None]
    if len(nodes) < len(whens):  # a rule without a condition: every subject
        return None
    window, days, constants = _ages(for_each, nodes)
    states = set(states) | {active}
    # The states whose subjects may be due on the same days go in one filter.
    by_days: dict[tuple[int | None, ...], set[str]] = {}
    for state in sorted(states):
        kept = tuple(day for day in days if _may_hold(nodes, constants, state, day))
        if kept:
            by_days.setdefault(kept, set()).add(state)
    if not by_days:
        return []
    filters = [_filter(kept, group, states, active, window if len(kept) < len(days) else None, now)
               for kept, group in sorted(by_days.items(), key=lambda item: sorted(item[1]))]
    return None if filters == [SubjectFilter()] else filters


def _ages(for_each: str, nodes: Sequence[Node]) \
        -> tuple[tuple[int, int] | None, list[int | None], dict[str, str]]:
    """The age window of an invoice sweep's conditions, the ages that stand for every age
    ([None]: no age test, or not invoices), and what every subject of the sweep has."""
    window = _day_window(nodes) if for_each == "invoice" else None
    if window is None:
        return None, [None], INVOICE_CONSTANTS if for_each == "invoice" else {}
    return window, list(range(window[0], window[1] + 1)), INVOICE_CONSTANTS


def _may_hold(nodes: Sequence[Node], constants: dict[str, str], state: str, day: int | None) -> bool:
    """Whether some condition may hold (is not false) on the cell (dunning state, age)."""
    values: dict[str, Any] = dict(constants) | dict.fromkeys(STATE_PATHS, state)
    if day is not None:
        values.update(dict.fromkeys(DAY_PATHS, Decimal(day)))
    return any(_eval3(n, values) is not False for n in nodes)


def _filter(kept: tuple[int | None, ...], group: set[str], states: set[str], active: str,
            window: tuple[int, int] | None, now: datetime) -> SubjectFilter:
    """The filter for the subjects aged `kept` in the states `group` (`window`: None when
    every age is kept)."""
    issued = None if window is None else _issued_ranges([d for d in kept if d is not None], window, now)
    if group == states:
        return SubjectFilter(issued)
    if active in group:  # no record means active: exclude the others
        return SubjectFilter(issued, states_not_in=frozenset(states - group))
    return SubjectFilter(issued, states_in=frozenset(group))
