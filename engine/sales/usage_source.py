"""Where usage comes from, as billing reads it: straight from the table (`UsageSource`), or
preloaded for a billing run's batch (`BatchUsage`), and a period's usage of a plan's
metrics (`usage_for`). Moved from engine.sales.cycle."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.periods import Period
from engine.pricing import MetricUsage, UsageEvent, aggregate_all
from engine.sales.due import at_midnight
from engine.sales.models import UsageRecord


class UsageSource:
    """Usage as billing reads it: straight from the table, one query per need."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def events(self, customer_id: str, start: datetime, end: datetime, types: set[str]) -> list[UsageEvent]:
        stmt = select(UsageRecord.id, UsageRecord.type, UsageRecord.time, UsageRecord.properties).where(
            UsageRecord.customer_id == customer_id,
            UsageRecord.time >= start,
            UsageRecord.time < end,
            UsageRecord.type.in_(sorted(types)),
        )
        return [UsageEvent(i, t, w, customer_id, p or {}) for i, t, w, p in self.session.execute(stmt)]

    def prior(self, customer_id: str, before: datetime, types: set[str]) -> list[UsageEvent]:
        return self.events(customer_id, datetime(1970, 1, 1, tzinfo=UTC), before, types)

    def late_times(self, customer_id: str, since: datetime, before: datetime, types: set[str]) -> list[datetime]:
        """Times of events received since `since` that fall before `before`: candidates for
        periods already invoiced."""
        stmt = select(UsageRecord.time).where(
            UsageRecord.customer_id == customer_id,
            UsageRecord.received_at >= since,
            UsageRecord.time < before,
            UsageRecord.type.in_(sorted(types)),
        )
        return list(self.session.scalars(stmt))


class BatchUsage(UsageSource):
    """One query for a whole batch of subscriptions; falls back to the table for anything
    outside what was preloaded."""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._window: tuple[datetime, datetime, frozenset[str]] | None = None
        self._events: dict[str, list[UsageEvent]] = {}
        self._late: tuple[datetime, datetime, frozenset[str]] | None = None
        self._late_times: dict[str, list[tuple[datetime, datetime, str]]] = {}

    def preload(self, customers: Sequence[str], start: datetime, end: datetime, types: set[str]) -> None:
        if not customers or not types:
            return
        self._window = (start, end, frozenset(types))
        self._events = {c: [] for c in customers}
        stmt = select(
            UsageRecord.id, UsageRecord.customer_id, UsageRecord.type, UsageRecord.time, UsageRecord.properties
        )
        stmt = stmt.where(
            UsageRecord.customer_id.in_(list(customers)),
            UsageRecord.time >= start,
            UsageRecord.time < end,
            UsageRecord.type.in_(sorted(types)),
        )
        for i, c, t, w, p in self.session.execute(stmt):
            self._events[c].append(UsageEvent(i, t, w, c, p or {}))

    def preload_late(self, customers: Sequence[str], since: datetime, before: datetime, types: set[str]) -> None:
        if not customers or not types:
            return
        self._late = (since, before, frozenset(types))
        self._late_times = {c: [] for c in customers}
        stmt = select(UsageRecord.customer_id, UsageRecord.time, UsageRecord.received_at, UsageRecord.type).where(
            UsageRecord.customer_id.in_(list(customers)),
            UsageRecord.received_at >= since,
            UsageRecord.time < before,
            UsageRecord.type.in_(sorted(types)),
        )
        for c, w, r, t in self.session.execute(stmt):
            self._late_times[c].append((w, r, t))

    def events(self, customer_id: str, start: datetime, end: datetime, types: set[str]) -> list[UsageEvent]:
        if customer_id in self._events and _covers(self._window, start, end, types):
            return [e for e in self._events[customer_id] if start <= e.time < end and e.type in types]
        return super().events(customer_id, start, end, types)

    def late_times(self, customer_id: str, since: datetime, before: datetime, types: set[str]) -> list[datetime]:
        if customer_id in self._late_times and _covers(self._late, since, before, types):
            return [t for t, r, typ in self._late_times[customer_id] if r >= since and t < before and typ in types]
        return super().late_times(customer_id, since, before, types)


def _covers(window: tuple[datetime, datetime, frozenset[str]] | None, start: datetime, end: datetime,
            types: set[str]) -> bool:
    """What was preloaded (`window`: from, until, event types) holds [start, end) of `types`."""
    return window is not None and window[0] <= start and end <= window[1] and types <= window[2]


def usage_for(
    src: UsageSource, catalog: Catalog, plan: Plan, customer_id: str, period: Period, until: date | None = None
) -> dict[str, MetricUsage]:
    """The period's usage of the plan's metrics; `until`: the period was cut short there (a
    change of interval, a cancellation), so later events belong to the next period or none."""
    metrics = {p.metric: catalog.metrics[p.metric] for p in plan.prices if p.metric}
    if not metrics:
        return {}
    types = {m.event for m in metrics.values()}
    end = at_midnight(until) if until is not None and until < period.end else period.end_at
    events = src.events(customer_id, period.start_at, end, types)
    recurring = {m.event for m in metrics.values() if m.recurring}
    prior = src.prior(customer_id, period.start_at, recurring) if recurring else []
    return aggregate_all(metrics, events, period, prior=prior)
