"""What is due, and when: a subscription's periods (`plan_period`), whether its period (or
trial) work is due, the open periods of a batch, and late usage (since when usage may be
late, when the late usage waiting is billed, up to which day periods are closed). Moved
from engine.sales.cycle."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from engine.catalog.model import Plan
from engine.periods import Period, period_boundary
from engine.sales.models import Subscription

TRIAL_NOTICE = timedelta(days=3)

def at_midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), UTC)


def period_due(sub: Subscription, now: datetime) -> bool:
    """The subscription's period (or trial) work is due at `now`."""
    return sub.next_run_at is not None and sub.next_run_at <= now


class OpenPeriod(NamedTuple):
    sub: Subscription
    start: date
    end: date


def open_periods(subs: Iterable[Subscription]) -> list[OpenPeriod]:
    """Those of the subscriptions that have a current period, with its dates."""
    return [
        OpenPeriod(s, s.period_start, s.period_end)
        for s in subs
        if s.period_start is not None and s.period_end is not None
    ]


def plan_period(plan: Plan, anchor: date, index: int) -> Period:
    if plan.interval == "once":
        return Period(anchor, anchor + timedelta(days=1))
    count = plan.interval_count
    return Period(
        period_boundary(anchor, plan.interval, index, count), period_boundary(anchor, plan.interval, index + 1, count)
    )


def late_since(sub: Subscription) -> datetime | None:
    """Since when usage received may be late for this subscription: since its last document,
    or since late usage was marked waiting, if that is earlier (an event stamped before a
    concurrent close committed)."""
    times = [t for t in (sub.last_billed_at, sub.late_usage_since) if t is not None]
    return min(times, default=None)


def late_due_at(sub: Subscription) -> datetime | None:
    """When the late usage waiting is billed: at the first billing run from the midnight (UTC)
    after it arrived. A day's late batches make one adjustment invoice, not one per batch."""
    if sub.late_usage_since is None:
        return None
    return at_midnight(sub.late_usage_since.date() + timedelta(days=1))


def late_due(sub: Subscription, now: datetime) -> bool:
    due = late_due_at(sub)
    return due is not None and due <= now


def billed_until(sub: Subscription) -> date | None:
    """The day up to which the subscription's periods are billed (closed): its current
    period's start, or the day it ended. Usage dated before is late usage."""
    if sub.status == "active":
        return sub.period_start
    if sub.status == "paused":  # its last period is closed; nothing is billed after it
        return sub.period_end
    return sub.ended_at.date() if sub.ended_at is not None else None
