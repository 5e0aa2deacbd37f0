"""Closing periods: the step that moves one subscription past the next thing due.

A step is one of: the trial-will-end notice, the end of a trial (the first period opens and
its in-advance charges are invoiced), or a period boundary (the closed period's in-arrears
usage, minimum true-up and late-usage adjustments, plus the new period's in-advance charges,
on one invoice; or the final invoice when the subscription was set to cancel).
The caller owns the transaction: a step writes its invoice, its lines, its number, the
subscription's new state and its events together, or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.periods import Period, period_boundary
from engine.pricing import (
    Discount,
    Line,
    MetricUsage,
    UsageEvent,
    aggregate_all,
    coupon_applies_in_period,
    coupon_discount,
    fmt_quantity,
    minimum_true_up,
    price_period,
    tax_for,
)
from engine.pricing.charges import charge
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.customers import tax_subject
from engine.sales.invoicing import Arrears, issue_bill
from engine.sales.models import CreditNote, Customer, Invoice, InvoiceLine, Subscription, UsageRecord
from engine.store import add_event

ZERO = Decimal(0)
TRIAL_NOTICE = timedelta(days=3)
ADVANCE = frozenset({"in_advance"})
ARREARS = frozenset({"in_arrears"})
NONE: frozenset[str] = frozenset()


def at_midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), UTC)


def plan_period(plan: Plan, anchor: date, index: int) -> Period:
    if plan.interval == "once":
        return Period(anchor, anchor + timedelta(days=1))
    count = plan.interval_count
    return Period(
        period_boundary(anchor, plan.interval, index, count), period_boundary(anchor, plan.interval, index + 1, count)
    )


def advance_amount(plan: Plan, quantity: Decimal) -> Decimal:
    return sum((charge(p, quantity).amount for p in plan.prices if p.timing == "in_advance"), ZERO)


def metered(catalog: Catalog, plan: Plan) -> dict[str, object]:
    return {p.metric: catalog.metrics[p.metric] for p in plan.prices if p.metric}


# --- where usage comes from -----------------------------------------------------------------


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
        w = self._window
        if w is not None and customer_id in self._events and w[0] <= start and end <= w[1] and types <= w[2]:
            return [e for e in self._events[customer_id] if start <= e.time < end and e.type in types]
        return super().events(customer_id, start, end, types)

    def late_times(self, customer_id: str, since: datetime, before: datetime, types: set[str]) -> list[datetime]:
        w = self._late
        if w is not None and customer_id in self._late_times and w[0] <= since and before <= w[1] and types <= w[2]:
            return [t for t, r, typ in self._late_times[customer_id] if r >= since and t < before and typ in types]
        return super().late_times(customer_id, since, before, types)


def usage_for(
    src: UsageSource, catalog: Catalog, plan: Plan, customer_id: str, period: Period
) -> dict[str, MetricUsage]:
    metrics = {p.metric: catalog.metrics[p.metric] for p in plan.prices if p.metric}
    if not metrics:
        return {}
    types = {m.event for m in metrics.values()}
    events = src.events(customer_id, period.start_at, period.end_at, types)
    recurring = {m.event for m in metrics.values() if m.recurring}
    prior = src.prior(customer_id, period.start_at, recurring) if recurring else []
    return aggregate_all(metrics, events, period, prior=prior)


# --- pieces of an invoice ---------------------------------------------------------------------


def discounts_for(catalog: Catalog, sub: Subscription, plan_id: str, cycle: int) -> list[Discount]:
    if not sub.coupon_code or sub.coupon_first_cycle is None:
        return []
    coupon = catalog.coupons.get(sub.coupon_code)
    if coupon is None or (coupon.applies_to and plan_id not in coupon.applies_to):
        return []
    return [coupon_discount(coupon)] if coupon_applies_in_period(coupon, cycle - sub.coupon_first_cycle) else []


def billed_in_advance(session: Session, subscription_id: str, period_start: date) -> Decimal:
    stmt = select(func.coalesce(func.sum(InvoiceLine.amount), 0)).where(
        InvoiceLine.subscription_id == subscription_id,
        InvoiceLine.period_start == period_start,
        InvoiceLine.timing == "in_advance",
        InvoiceLine.kind.in_(("charge", "proration")),
    )
    # Summing a string column on SQLite is not exact: add in Python instead.
    if session.get_bind().dialect.name != "postgresql":
        amounts = session.scalars(
            select(InvoiceLine.amount).where(
                InvoiceLine.subscription_id == subscription_id,
                InvoiceLine.period_start == period_start,
                InvoiceLine.timing == "in_advance",
                InvoiceLine.kind.in_(("charge", "proration")),
            )
        )
        return sum(amounts, ZERO)
    return Decimal(str(session.scalar(stmt)))


def arrears_lines(
    session: Session,
    src: UsageSource,
    catalog: Catalog,
    plan: Plan,
    sub: Subscription,
    period: Period,
    quantity: Decimal,
    *,
    usage_period: Period | None = None,
) -> list[Line]:
    """The in-arrears lines of a period and its minimum-commitment true-up."""
    usage = usage_for(src, catalog, plan, sub.customer_id, usage_period or period)
    lines = list(
        price_period(catalog, plan, period, quantity=quantity, usage=usage, timings=ARREARS, minimum=False).lines
    )
    if plan.minimum_amount > ZERO:
        charged = billed_in_advance(session, sub.id, period.start) + sum((x.amount for x in lines), ZERO)
        true_up = minimum_true_up(plan, catalog.rounder, charged, None, period)
        if true_up is not None:
            lines.append(true_up)
    return lines


def late_adjustments(
    session: Session, src: UsageSource, catalog: Catalog, sub: Subscription, before: date
) -> list[Line]:
    """Usage received since the last invoice for periods already invoiced: the difference
    between the period priced with every event now known and what was billed for it, as
    adjustment lines that name the period."""
    if sub.last_billed_at is None:
        return []
    types = {m.event for m in catalog.metrics.values()}
    times = src.late_times(sub.customer_id, sub.last_billed_at, at_midnight(before), types)
    if not times:
        return []
    invoices = session.scalars(
        select(Invoice)
        .where(Invoice.subscription_id == sub.id, Invoice.arrears_start.is_not(None))
        .order_by(Invoice.arrears_start)
    ).all()
    hit: dict[date, Invoice] = {}
    for t in times:
        for inv in invoices:
            assert inv.arrears_start is not None and inv.arrears_end is not None
            if at_midnight(inv.arrears_start) <= t < at_midnight(inv.arrears_end):
                hit.setdefault(inv.arrears_start, inv)
                break
    out: list[Line] = []
    for start in sorted(hit):
        inv = hit[start]
        assert inv.arrears_end is not None and inv.arrears_plan_id and inv.arrears_version_id is not None
        period = Period(start, inv.arrears_end)
        cat = catalog_for_version(session, inv.arrears_version_id)
        plan = cat.plan(inv.arrears_plan_id)
        usage = usage_for(UsageSource(session), cat, plan, sub.customer_id, period)
        now_priced = price_period(
            cat, plan, period, quantity=inv.arrears_quantity or Decimal(1), usage=usage, timings=ARREARS, minimum=False
        ).lines
        billed: dict[str, tuple[Decimal, Decimal]] = {}
        for pid, amount, qty in session.execute(
            select(InvoiceLine.price_id, InvoiceLine.amount, InvoiceLine.quantity).where(
                InvoiceLine.subscription_id == sub.id,
                InvoiceLine.period_start == start,
                InvoiceLine.timing == "in_arrears",
                InvoiceLine.kind.in_(("charge", "adjustment")),
            )
        ):
            a, q = billed.get(pid, (ZERO, ZERO))
            billed[pid] = (a + amount, q + qty)
        for line in now_priced:
            a, q = billed.get(line.price_id, (ZERO, ZERO))
            diff = line.amount - a
            if diff == ZERO:
                continue
            out.append(
                Line(
                    line.price_id,
                    f"{line.name or line.price_id} - late usage for {period}",
                    line.model,
                    "in_arrears",
                    line.quantity - q,
                    diff,
                    kind="adjustment",
                    period=period,
                    note=f"late usage for period {period}",
                )
            )
    return out


# --- the step ---------------------------------------------------------------------------------


@dataclass
class StepResult:
    subscription_id: str
    action: str  # trial_notice | started | renewed | ended
    at: datetime
    document_id: str | None = None
    events: list[str] = field(default_factory=list)


def open_first_period(
    session: Session, sub: Subscription, customer: Customer, catalog: Catalog, plan: Plan, now: datetime, reason: str
) -> Invoice | CreditNote:
    """The first period opens: its in-advance charges are invoiced now."""
    p0 = plan_period(plan, sub.anchor, 0)
    sub.status = "active"
    sub.period_index = 0
    sub.cycle = 0
    sub.period_start, sub.period_end = p0.start, p0.end
    sub.next_run_at = p0.end_at
    sub.last_billed_at = now
    bill = price_period(
        catalog,
        plan,
        p0,
        quantity=sub.quantity,
        timings=ADVANCE,
        minimum=False,
        discounts=discounts_for(catalog, sub, plan.id, 0),
        tax=tax_for(catalog, tax_subject(customer)),
    )
    return issue_bill(
        session,
        customer=customer,
        subscription=sub,
        bill=bill,
        rounder=catalog.rounder,
        reason=reason,
        billing_key=f"period:{p0.start.isoformat()}",
        now=now,
        version_id=sub.catalog_version_id,
        period=p0,
        payment_method=sub.payment_method,
    )


def subscription_event(sub: Subscription, **extra: object) -> dict[str, object]:
    props: dict[str, object] = {
        "subscription_id": sub.id,
        "customer_id": sub.customer_id,
        "plan": sub.plan_id,
        "catalog": sub.catalog,
        "catalog_version_id": sub.catalog_version_id,
        "quantity": fmt_quantity(sub.quantity),
        "status": sub.status,
        "period_start": sub.period_start.isoformat() if sub.period_start else None,
        "period_end": sub.period_end.isoformat() if sub.period_end else None,
        "trial_end": sub.trial_end.isoformat() if sub.trial_end else None,
        "cancel_at_period_end": sub.cancel_at_period_end,
    }
    props.update(extra)
    return props


def run_step(
    session: Session, sub: Subscription, customer: Customer, now: datetime, src: UsageSource
) -> StepResult | None:
    """Do the earliest piece of work due at `now` (one step); None when nothing is due."""
    if sub.next_run_at is None or sub.next_run_at > now:
        return None
    if sub.status == "trialing":
        assert sub.trial_end is not None
        end_at = at_midnight(sub.trial_end)
        if not sub.trial_notice_sent and now < end_at:
            sub.trial_notice_sent = True
            sub.next_run_at = end_at
            add_event(session, "subscription.trial_will_end", sub.customer_id, subscription_event(sub), time=now)
            return StepResult(sub.id, "trial_notice", now, events=["subscription.trial_will_end"])
        sub.trial_notice_sent = True
        catalog = catalog_for_version(session, sub.catalog_version_id)
        plan = catalog.plan(sub.plan_id)
        doc = open_first_period(session, sub, customer, catalog, plan, now, "start")
        add_event(session, "subscription.renewed", sub.customer_id, subscription_event(sub, trial_ended=True), time=now)
        return StepResult(sub.id, "started", now, doc.id, ["subscription.renewed"])
    if sub.status != "active" or sub.period_start is None or sub.period_end is None:
        sub.next_run_at = None
        return None
    return close_period(session, sub, customer, now, src)


def close_period(
    session: Session, sub: Subscription, customer: Customer, now: datetime, src: UsageSource
) -> StepResult:
    assert sub.period_start is not None and sub.period_end is not None
    catalog = catalog_for_version(session, sub.catalog_version_id)
    plan = catalog.plan(sub.plan_id)
    closed = Period(sub.period_start, sub.period_end)
    extra = arrears_lines(session, src, catalog, plan, sub, closed, sub.quantity)
    extra += late_adjustments(session, src, catalog, sub, closed.start)
    arrears = Arrears(closed, plan.id, sub.catalog_version_id, sub.quantity)
    sub.last_billed_at = now
    if sub.cancel_at_period_end:
        bill = price_period(
            catalog,
            plan,
            closed,
            quantity=sub.quantity,
            timings=NONE,
            minimum=False,
            extra_lines=extra,
            discounts=discounts_for(catalog, sub, plan.id, sub.cycle + 1),
            tax=tax_for(catalog, tax_subject(customer)),
        )
        doc = issue_bill(
            session,
            customer=customer,
            subscription=sub,
            bill=bill,
            rounder=catalog.rounder,
            reason="final",
            billing_key=f"final:{closed.end.isoformat()}",
            now=now,
            version_id=sub.catalog_version_id,
            period=closed,
            arrears=arrears,
            payment_method=sub.payment_method,
        )
        sub.status = "canceled"
        sub.ended_at = closed.end_at
        sub.next_run_at = None
        add_event(session, "subscription.canceled", sub.customer_id, subscription_event(sub, ended=True), time=now)
        return StepResult(sub.id, "ended", now, doc.id, ["subscription.canceled"])

    changed: dict[str, object] = {}
    new_catalog, new_plan = catalog, plan
    if sub.pending_version_id is not None and sub.pending_version_id != sub.catalog_version_id:
        new_catalog = catalog_for_version(session, sub.pending_version_id)
        changed["catalog_version_id"] = {"from": sub.catalog_version_id, "to": sub.pending_version_id}
        sub.catalog_version_id = sub.pending_version_id
    if sub.pending_plan_id is not None and sub.pending_plan_id != sub.plan_id:
        changed["plan"] = {"from": sub.plan_id, "to": sub.pending_plan_id}
        sub.plan_id = sub.pending_plan_id
    if sub.pending_quantity is not None and sub.pending_quantity != sub.quantity:
        changed["quantity"] = {"from": fmt_quantity(sub.quantity), "to": fmt_quantity(sub.pending_quantity)}
        sub.quantity = sub.pending_quantity
    sub.pending_version_id = sub.pending_plan_id = None
    sub.pending_quantity = None
    new_plan = new_catalog.plan(sub.plan_id)
    if (new_plan.interval, new_plan.interval_count) != (plan.interval, plan.interval_count):
        sub.anchor = closed.end
        index = 0
    else:
        index = sub.period_index + 1
    sub.interval = new_plan.interval
    new_period = plan_period(new_plan, sub.anchor, index)
    sub.period_index = index
    sub.cycle += 1
    sub.period_start, sub.period_end = new_period.start, new_period.end
    sub.next_run_at = new_period.end_at
    bill = price_period(
        new_catalog,
        new_plan,
        new_period,
        quantity=sub.quantity,
        timings=ADVANCE,
        minimum=False,
        extra_lines=extra,
        discounts=discounts_for(new_catalog, sub, new_plan.id, sub.cycle),
        tax=tax_for(new_catalog, tax_subject(customer)),
    )
    doc = issue_bill(
        session,
        customer=customer,
        subscription=sub,
        bill=bill,
        rounder=new_catalog.rounder,
        reason="cycle",
        billing_key=f"period:{new_period.start.isoformat()}",
        now=now,
        version_id=sub.catalog_version_id,
        period=new_period,
        arrears=arrears,
        payment_method=sub.payment_method,
    )
    events = ["subscription.renewed"]
    if changed:
        add_event(
            session,
            "subscription.changed",
            sub.customer_id,
            subscription_event(sub, changes=changed, effective=str(new_period.start)),
            time=now,
        )
        events.append("subscription.changed")
    add_event(session, "subscription.renewed", sub.customer_id, subscription_event(sub), time=now)
    return StepResult(sub.id, "renewed", now, doc.id, events)


def catch_up(
    session: Session, sub: Subscription, customer: Customer, now: datetime, limit: int = 10_000
) -> list[StepResult]:
    """Run every step due for one subscription (used before changing it)."""
    src = UsageSource(session)
    out = []
    for _ in range(limit):
        r = run_step(session, sub, customer, now, src)
        if r is None:
            break
        out.append(r)
    return out


def due_types(catalogs: Iterable[Catalog]) -> set[str]:
    return {m.event for c in catalogs for m in c.metrics.values()}
