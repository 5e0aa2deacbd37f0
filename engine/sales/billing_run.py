"""The billing run: every subscription whose period closed (or trial ended) is invoiced.

Subscriptions are taken in batches, in order of when their work fell due. A batch is one
transaction that first takes the invoice-number counter's lock, then the subscriptions'
row locks, and re-checks that each is still due: two runs racing over the same
subscriptions serialise, and the second finds nothing left to do. The unique
(subscription, billing key) constraint stops a double invoice even if that logic were
bypassed. A batch that fails is rolled back whole (no partial invoice) and retried one
subscription at a time, so one broken subscription does not hold back the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine.clock import Clock, TestClock
from engine.durations import parse_duration
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.cycle import run_step
from engine.sales.due import OpenPeriod, at_midnight, late_since, open_periods, period_due
from engine.sales.errors import SalesError
from engine.sales.invoicing import defer_finalize, finalize_deferred
from engine.sales.ledger import LEDGER, flush_deferred, histories
from engine.sales.models import Customer, Subscription
from engine.sales.numbering import lock_counter
from engine.sales.pieces import StepContext
from engine.sales.step_events import StepResult
from engine.sales.usage_source import BatchUsage
from engine.store import Database

log = logging.getLogger(__name__)

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass
class RunReport:
    at: datetime
    steps: list[StepResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def invoices(self) -> int:
        """Documents issued (invoices, and credit notes where a period ended in credit)."""
        return sum(1 for s in self.steps if s.document_id is not None)

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for s in self.steps:
            counts[s.action] = counts.get(s.action, 0) + 1
        return {
            "at": self.at.isoformat(),
            "steps": len(self.steps),
            "documents": self.invoices,
            "actions": counts,
            "failures": [{"subscription_id": s, "error": e} for s, e in self.failures],
        }


def _factory(session_factory: Database | SessionFactory) -> SessionFactory:
    return session_factory.session if isinstance(session_factory, Database) else session_factory


def process_batch(
    session: Session, ids: list[str], now: datetime, promotions: PromotionSource | None = None
) -> list[StepResult]:
    """One step for each of these subscriptions that is still due at `now`."""
    # Multi-row INSERT pages short enough for psycopg's statement cache: a 1,000-row VALUES
    # list costs more to build and parse than to execute.
    session.connection(execution_options={"insertmanyvalues_page_size": 25})
    lock_counter(session, "invoice", now.year)
    subs = list(
        session.scalars(
            select(Subscription)
            .where(
                Subscription.id.in_(ids),
                or_(Subscription.next_run_at <= now, Subscription.late_usage_since < late_cutoff(now)),
            )
            .order_by(Subscription.next_run_at, Subscription.id)
            .with_for_update()
        )
    )
    if not subs:
        return []
    customers = {
        c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_({s.customer_id for s in subs})))
    }
    closing = open_periods(s for s in subs if s.status == "active" and period_due(s, now))
    ctx = StepContext(
        _closing_usage(session, closing),
        promotions,
        histories(session, [(p.sub.id, p.start) for p in closing]),
    )
    out = []
    defer_finalize(session)
    session.info[LEDGER] = []
    with session.no_autoflush:
        for sub in subs:
            result = run_step(session, sub, customers[sub.customer_id], now, ctx)
            if result is not None:
                out.append(result)
    finalize_deferred(session, now)
    flush_deferred(session)
    return out


def _closing_usage(session: Session, closing: list[OpenPeriod]) -> BatchUsage:
    """The usage of the periods closing, and the late usage received since the earliest of
    their last documents, read in one query each."""
    src = BatchUsage(session)
    if not closing:
        return src
    types = {
        m.event
        for vid in {p.sub.catalog_version_id for p in closing}
        for m in catalog_for_version(session, vid).metrics.values()
    }
    cids = sorted({p.sub.customer_id for p in closing})
    start = at_midnight(min(p.start for p in closing))
    src.preload(cids, start, at_midnight(max(p.end for p in closing)), types)
    since = [t for t in map(late_since, (p.sub for p in closing)) if t is not None]
    if since:
        src.preload_late(cids, min(since), start, types)
    return src


def late_cutoff(now: datetime) -> datetime:
    """Late usage that arrived before this is due at `now`: it waits for the first run from
    the midnight (UTC) after it arrived (`engine.sales.due.late_due_at`)."""
    return at_midnight(now.date())


def _due_ids(session: Session, now: datetime, limit: int, failed: set[str]) -> list[str]:
    """Up to `limit` subscriptions with a step due, those that failed in this run aside: period
    work first (in the order it fell due), then late usage alone (when both are due, the
    period's invoice bills the late usage too)."""
    for due, order in (
        (Subscription.next_run_at <= now, Subscription.next_run_at),
        (Subscription.late_usage_since < late_cutoff(now), Subscription.late_usage_since),
    ):
        ids = session.scalars(
            select(Subscription.id).where(due).order_by(order, Subscription.id).limit(limit + len(failed))
        )
        left = [i for i in ids if i not in failed][:limit]
        if left:
            return left
    return []


def run_due_billing(
    session_factory: Database | SessionFactory,
    clock: Clock,
    *,
    batch_size: int = 200,
    promotions: PromotionSource | None = None,
) -> RunReport:
    """Run every step due at the clock's time; loops until nothing is due. `session_factory`
    is a `Database` or a callable returning a session context manager that commits;
    `promotions` gives the published pricing rules' discounts (none without it)."""
    factory = _factory(session_factory)
    now = clock.now()
    report = RunReport(now)
    failed: set[str] = set()
    while True:
        with factory() as s:
            ids = _due_ids(s, now, batch_size, failed)
        if not ids:
            return report
        try:
            with factory() as s:
                steps = process_batch(s, ids, now, promotions)
            report.steps.extend(steps)
            if not steps:
                # Everything in the batch was done by a concurrent run meanwhile.
                continue
        except Exception:
            for sid in ids:
                try:
                    with factory() as s:
                        report.steps.extend(process_batch(s, [sid], now, promotions))
                except Exception as exc:  # one broken subscription must not stop the run
                    log.exception("billing subscription %s failed", sid)
                    failed.add(sid)
                    report.failures.append((sid, f"{type(exc).__name__}: {exc}"))


def next_due(session_factory: Any) -> datetime | None:
    """The first time the billing run has work: a period's end (or a trial's), or the midnight
    after late usage arrived."""
    with _factory(session_factory)() as s:
        period = s.scalar(select(func.min(Subscription.next_run_at)))
        late = s.scalar(select(func.min(Subscription.late_usage_since)))
    if late is not None:
        late = at_midnight(late.date() + timedelta(days=1))  # as engine.sales.due.late_due_at
    times = [t for t in (period, late) if t is not None]
    return min(times, default=None)


def _target(start: datetime, to: datetime | None, by: str | None) -> datetime:
    """Where the clock is to go: `to` (a time with its timezone) or `by` (a duration) after `start`."""
    match to, by:
        case None, str():
            try:
                return parse_duration(by).after(start)
            except ValueError as exc:
                raise SalesError("by", str(exc)) from None
        case datetime(), None:
            if to.tzinfo is None:
                raise SalesError("to", "the time has no timezone (add Z or +00:00)")
            return to
    raise SalesError("to", "give either to (a time) or by (a duration such as 1mo)")


def _bill_due(
    session_factory: Database | SessionFactory,
    clock: TestClock,
    hooks: list[Callable[[datetime], Any]],
    promotions: PromotionSource | None,
) -> RunReport:
    """The billing run at the clock's time, then the other subsystems' due work (`hooks`)."""
    report = run_due_billing(session_factory, clock, promotions=promotions)
    for hook in hooks:
        hook(clock.now())
    return report


def advance_clock(
    session_factory: Database | SessionFactory,
    clock: TestClock,
    *,
    to: datetime | None = None,
    by: str | None = None,
    also: Iterable[Callable[[datetime], Any]] = (),
    promotions: PromotionSource | None = None,
) -> list[RunReport]:
    """Move a test clock forward, running every period close that falls due on the way in
    time order: the clock stops at each due time, the run bills what is due then (and the
    `also` callbacks run, e.g. other subsystems' due work), until the target time."""
    if not isinstance(clock, TestClock):
        raise SalesError("clock", "only a test clock can be advanced")
    start = clock.now()
    target = _target(start, to, by)
    if target < start:
        raise SalesError("to", f"the clock cannot go back from {start.isoformat()}")
    hooks = list(also)
    reports = []
    while True:
        due = next_due(session_factory)
        if due is None or due > target:
            break
        if due > clock.now():
            clock.set(due)
        reports.append(_bill_due(session_factory, clock, hooks, promotions))
        if reports[-1].failures and next_due(session_factory) == due:
            break  # only failing work is left at this time: do not spin
    clock.set(target)
    reports.append(_bill_due(session_factory, clock, hooks, promotions))
    return reports
