"""Closing periods: the step that moves one subscription past the next thing due.

A step is one of: the trial-will-end notice, the end of a trial (the first period opens and
its in-advance charges are invoiced), or a period boundary (the closed period's in-arrears
usage, minimum true-up and late-usage adjustments, plus the new period's in-advance charges,
on one invoice; or the final invoice when the subscription was set to cancel).
The caller owns the transaction: a step writes its invoice, its lines, its number, the
subscription's new state and its events together, or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.periods import Period, iso_or_none, period_boundary
from engine.pricing import Discount, MetricUsage, UsageEvent, aggregate_all, deduction, fmt_quantity, tax_for
from engine.pricing.charges import charge
from engine.pricing.document import ADVANCE, ARREARS, NOTHING, Billed, Document, Piece, held_minimum, price_document
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.customers import tax_subject
from engine.sales.invoicing import Arrears, CreditSettlement, issue_bill
from engine.sales.ledger import INTERIM, PeriodHistory, billed_periods, history, record
from engine.sales.models import CreditNote, Customer, Invoice, Subscription, UsageRecord
from engine.sales.terms import Terms, period_terms
from engine.store import add_event

ZERO = Decimal(0)
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


def advance_amount(plan: Plan, quantity: Decimal) -> Decimal:
    return sum((charge(p, quantity).amount for p in plan.prices if p.timing == "in_advance"), ZERO)


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


# --- pieces of a document -------------------------------------------------------------------


@dataclass
class StepContext:
    """What a step reads besides the subscription: usage, the published pricing rules, and
    the period ledger (preloaded by a billing run's batch)."""

    src: UsageSource
    promotions: PromotionSource | None = None
    histories: dict[tuple[str, date], PeriodHistory] | None = None

    def history(self, session: Session, subscription_id: str, start: date) -> PeriodHistory:
        if self.histories is not None:  # preloaded for the batch: no row is no history
            return self.histories.get((subscription_id, start)) or PeriodHistory()
        return history(session, subscription_id, start)


@dataclass
class Priced:
    """A piece with what the ledger records of it."""

    piece: Piece
    reason: str  # open | close | change | cancel | late | once
    cycle: int
    version_id: int


def opening_piece(
    catalog: Catalog,
    plan: Plan,
    sub: Subscription,
    customer: Customer,
    period: Period,
    cycle: int,
    ctx: StepContext,
    *,
    charge_from: date | None = None,
    credit: bool = False,
    before: Billed = NOTHING,
    discounts: Sequence[Discount] | None = None,
    quantity: Decimal | None = None,
) -> Piece:
    """A period's in-advance prices (from `charge_from`: prorated), with its discounts (the
    rules see the quantity priced: a change's new one)."""
    terms = (
        Terms(tuple(discounts))
        if discounts is not None
        else period_terms(catalog, plan, sub, customer, period, cycle, promotions=ctx.promotions, quantity=quantity)
    )
    return Piece(
        catalog,
        plan,
        period,
        ADVANCE,
        sub.quantity if quantity is None else quantity,
        charge_from=charge_from,
        discounts=terms.discounts,
        credit=credit,
        before=before,
        rules=terms.rules,
    )


def unused_credit(
    catalog: Catalog,
    plan: Plan,
    sub: Subscription,
    customer: Customer,
    period: Period,
    ctx: StepContext,
    hist: PeriodHistory,
    today: date,
) -> Piece:
    """The credit for the rest of a paid period from `today` (a cancellation or a plan change):
    its in-advance prices negated, with the discounts they were billed with."""
    return opening_piece(catalog, plan, sub, customer, period, sub.cycle, ctx, charge_from=today, credit=True,
                         before=hist.total(), discounts=hist.discounts("advance", plan.id))


def closing_piece(
    catalog: Catalog,
    plan: Plan,
    sub: Subscription,
    customer: Customer,
    period: Period,
    cycle: int,
    ctx: StepContext,
    hist: PeriodHistory,
    *,
    until: date | None = None,
    redeem: bool = True,
    usage: Mapping[str, MetricUsage] | None = None,
) -> Piece:
    """A period's in-arrears usage and its minimum commitment, against what it was charged.
    The usage is priced on the plan held at the close; each plan held in the period owes its
    minimum for the days it was held (`until`: the period was cut short there; `usage`: the
    period's usage when the caller has it)."""
    if usage is None:
        usage = usage_for(ctx.src, catalog, plan, sub.customer_id, period, until)
    terms = period_terms(
        catalog, plan, sub, customer, period, cycle, usage=usage, promotions=ctx.promotions, redeem=redeem
    )
    taken, held = held_terms(ctx.src.session, hist, period)
    return Piece(
        catalog,
        plan,
        period,
        ARREARS,
        sub.quantity,
        usage,
        charge_from=taken,
        charge_until=until,
        discounts=terms.discounts,
        minimum=True,
        held_minimum=held,
        before=hist.total(),
        rules=terms.rules,
    )


def with_deduction(hist: PeriodHistory, closing: Priced) -> list[Priced]:
    """A period's closing piece, followed by the deduction of what its progressive invoices
    billed (nothing when there were none): the close bills the whole period's usage as the
    quote prices it, the deduction takes back exactly what was invoiced early."""
    taken_back = deduction(closing.piece, hist.total(INTERIM))
    if taken_back is None:
        return [closing]
    return [closing, Priced(taken_back, "deduction", closing.cycle, closing.version_id)]


def held_terms(session: Session, hist: PeriodHistory, period: Period) -> tuple[date | None, Decimal]:
    """When the plan held at the period's close was taken (None: at its start), and what the
    plans held before it commit to (minimum x days), from the period's ledger."""
    held = [
        (catalog_for_version(session, r.version_id).plan(r.plan_id), r.charge_from or period.start) for r in hist.held()
    ]
    return held_minimum(held, period)


def closed_piece(session: Session, hist: PeriodHistory, period: Period, customer_id: str) -> Piece | None:
    """A closed period's usage and minimum priced again with every event now known, as its
    close priced them (plan, quantity, discounts, the days held): what its close and late
    usage bill together. None when the period has not closed."""
    closed = hist.last("arrears", charged=False)
    if closed is None:
        return None
    cat = catalog_for_version(session, closed.version_id)
    plan = cat.plan(closed.plan_id)
    usage = usage_for(UsageSource(session), cat, plan, customer_id, period, closed.charge_until)
    taken, held = held_terms(session, hist, period)
    return Piece(
        cat,
        plan,
        period,
        ARREARS,
        closed.quantity,
        usage,
        charge_from=taken,
        charge_until=closed.charge_until,
        discounts=hist.discounts("arrears", plan.id) or (),
        minimum=True,
        held_minimum=held,
    )


def late_since(sub: Subscription) -> datetime | None:
    """Since when usage received may be late for this subscription: since its last document,
    or since late usage was marked waiting, if that is earlier (an event stamped before a
    concurrent close committed)."""
    times = [t for t in (sub.last_billed_at, sub.late_usage_since) if t is not None]
    return min(times, default=None)


def late_pieces(session: Session, ctx: StepContext, catalog: Catalog, sub: Subscription, before: date) -> list[Priced]:
    """Usage received since the last document for periods already closed: each such period
    priced again with every event now known, against what its close billed (the difference
    becomes adjustment lines that name the period; the minimum's true-up follows). The
    document these pieces go on bills the late usage waiting: the mark is cleared."""
    since = late_since(sub)
    sub.late_usage_since = None
    if since is None:
        return []
    types = {m.event for m in catalog.metrics.values()}
    times = ctx.src.late_times(sub.customer_id, since, at_midnight(before), types)
    if not times:
        return []
    out = []
    for hist in billed_periods(session, sub.id, times):
        closed = hist.last("arrears", charged=False)
        assert closed is not None
        period = Period(closed.period_start, closed.period_end)
        again = closed_piece(session, hist, period, sub.customer_id)
        assert again is not None
        piece = replace(again, before=hist.total("advance"), replaces=hist.total("arrears"))
        out.append(Priced(piece, "late", closed.cycle, closed.version_id))
    return out


def price_pieces(
    priced: Sequence[Priced], customer: Customer, *, plan_id: str, period: Period, catalog: Catalog | None = None
) -> Document:
    """The pieces priced as one document, with the customer's tax."""
    cat = catalog or priced[0].piece.catalog
    return price_document(
        [p.piece for p in priced], tax_for(cat, tax_subject(customer)), catalog=cat, plan=plan_id, period=period
    )


def issue_document(
    session: Session,
    sub: Subscription,
    customer: Customer,
    priced: Sequence[Priced],
    *,
    reason: str,
    billing_key: str,
    now: datetime,
    period: Period,
    arrears: Arrears | None = None,
    number: int | None = None,
    catalog: Catalog | None = None,
    doc: Document | None = None,
    settlement: CreditSettlement | None = None,
) -> tuple[Invoice | CreditNote, Document]:
    """Price the pieces as one document (unless `doc` is that already), issue it (an invoice,
    or a credit note when it owes the customer, its money going where `settlement` says) and
    record each piece in the period ledger."""
    cat = catalog or priced[0].piece.catalog
    doc = doc or price_pieces(priced, customer, plan_id=sub.plan_id, period=period, catalog=cat)
    issued = issue_bill(
        session,
        customer=customer,
        subscription=sub,
        bill=doc,
        rounder=cat.rounder,
        reason=reason,
        billing_key=billing_key,
        now=now,
        version_id=sub.catalog_version_id,
        period=period,
        arrears=arrears,
        payment_method=sub.payment_method,
        number=number,
        settlement=settlement,
    )
    record(
        session,
        subscription_id=sub.id,
        document_id=issued.id,
        doc=doc,
        reasons=[p.reason for p in priced],
        cycles=[p.cycle for p in priced],
        version_ids=[p.version_id for p in priced],
        now=now,
    )
    return issued, doc


# --- the step ---------------------------------------------------------------------------------


@dataclass
class StepResult:
    subscription_id: str
    action: str  # trial_notice | started | renewed | ended | paused
    at: datetime
    document_id: str | None = None
    events: list[str] = field(default_factory=list)


def open_first_period(
    session: Session,
    sub: Subscription,
    customer: Customer,
    catalog: Catalog,
    plan: Plan,
    now: datetime,
    reason: str,
    ctx: StepContext,
) -> Invoice | CreditNote:
    """The first period opens: its in-advance charges are invoiced now."""
    p0 = plan_period(plan, sub.anchor, 0)
    sub.status = "active"
    sub.period_index = 0
    sub.cycle = 0
    sub.period_start, sub.period_end = p0.start, p0.end
    sub.next_run_at = p0.end_at
    sub.last_billed_at = now
    piece = opening_piece(catalog, plan, sub, customer, p0, 0, ctx)
    doc, _ = issue_document(
        session,
        sub,
        customer,
        [Priced(piece, "open", 0, sub.catalog_version_id)],
        reason=reason,
        billing_key=f"period:{p0.start.isoformat()}",
        now=now,
        period=p0,
    )
    return doc


def subscription_event(sub: Subscription, **extra: object) -> dict[str, object]:
    props: dict[str, object] = {
        "subscription_id": sub.id,
        "customer_id": sub.customer_id,
        "plan": sub.plan_id,
        "catalog": sub.catalog,
        "catalog_version_id": sub.catalog_version_id,
        "quantity": fmt_quantity(sub.quantity),
        "status": sub.status,
        "period_start": iso_or_none(sub.period_start),
        "period_end": iso_or_none(sub.period_end),
        "trial_end": iso_or_none(sub.trial_end),
        "cancel_at_period_end": sub.cancel_at_period_end,
    }
    props.update(extra)
    return props


def run_step(
    session: Session, sub: Subscription, customer: Customer, now: datetime, ctx: StepContext
) -> StepResult | None:
    """Do the earliest piece of work due at `now` (one step); None when nothing is due. A
    period's close comes first (its invoice bills the late usage waiting too); late usage
    alone is billed once it is due (`late_due`)."""
    if period_due(sub, now):
        if sub.status == "trialing":
            return _trial_step(session, sub, customer, now, ctx)
        if sub.status == "active" and sub.period_start is not None and sub.period_end is not None:
            return close_period(session, sub, customer, now, ctx)
        sub.next_run_at = None  # nothing left to close: only late usage may still be due
    return bill_late_usage(session, sub, customer, now, ctx) if late_due(sub, now) else None


def _trial_step(session: Session, sub: Subscription, customer: Customer, now: datetime, ctx: StepContext
                ) -> StepResult:
    """A trial's due step: the notice that it will end, then (at its end) the first period."""
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
    doc = open_first_period(session, sub, customer, catalog, plan, now, "start", ctx)
    add_event(session, "subscription.renewed", sub.customer_id, subscription_event(sub, trial_ended=True), time=now)
    return StepResult(sub.id, "started", now, doc.id, ["subscription.renewed"])


# --- late usage -------------------------------------------------------------------------------


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


def bill_late_usage(
    session: Session, sub: Subscription, customer: Customer, now: datetime, ctx: StepContext
) -> StepResult:
    """Late usage on its own: every closed period it reaches (renewed, cut short by a change of
    interval, or cancelled) priced again with every event now known, against what its
    documents billed, on one adjustment invoice (a minimum's true-up shrinks as the usage
    grows). Nothing late, or nothing that changes a figure: no document. Idempotent: what is
    billed is the difference from the period ledger, and the mark is cleared with it."""
    until = billed_until(sub)
    result = StepResult(sub.id, "late_usage", now)
    if until is None:
        sub.late_usage_since = None
        return result
    catalog = catalog_for_version(session, sub.catalog_version_id)
    priced = late_pieces(session, ctx, catalog, sub, until)
    if not priced:
        return result
    last = priced[-1]  # the latest period reached: the invoice names it
    doc = price_pieces(
        priced, customer, plan_id=last.piece.plan.id, period=last.piece.period, catalog=last.piece.catalog
    )
    if not doc.lines:
        return result
    issued, _ = issue_document(
        session,
        sub,
        customer,
        priced,
        reason="late",
        billing_key=f"late:{now.date().isoformat()}",
        now=now,
        period=last.piece.period,
        arrears=Arrears(last.piece.period, last.piece.plan.id, last.version_id, last.piece.quantity),
        catalog=last.piece.catalog,
        doc=doc,
    )
    sub.last_billed_at = now
    result.document_id = issued.id
    return result


def _take_pending(
    session: Session, sub: Subscription, catalog: Catalog, plan: Plan
) -> tuple[Catalog, dict[str, object]]:
    """Apply what was waiting for the period end (a downgrade, a catalog migration)."""
    changed: dict[str, object] = {}
    for key, attr, pending, shown in _PENDING:
        value = getattr(sub, pending)
        if value is not None and value != getattr(sub, attr):
            changed[key] = {"from": shown(getattr(sub, attr)), "to": shown(value)}
            setattr(sub, attr, value)
        setattr(sub, pending, None)
    if "catalog_version_id" in changed:
        catalog = catalog_for_version(session, sub.catalog_version_id)
    return catalog, changed


def _as_is(value: object) -> object:
    return value


# What may wait for the period end: (key in the change reported, column, pending column, how
# the change shows the values), in the order the change lists them.
_PENDING: tuple[tuple[str, str, str, Callable[[Any], object]], ...] = (
    ("catalog_version_id", "catalog_version_id", "pending_version_id", _as_is),
    ("plan", "plan_id", "pending_plan_id", _as_is),
    ("quantity", "quantity", "pending_quantity", fmt_quantity),
)


def close_period(
    session: Session, sub: Subscription, customer: Customer, now: datetime, ctx: StepContext
) -> StepResult:
    assert sub.period_start is not None and sub.period_end is not None
    catalog = catalog_for_version(session, sub.catalog_version_id)
    plan = catalog.plan(sub.plan_id)
    closed = Period(sub.period_start, sub.period_end)
    hist = ctx.history(session, sub.id, closed.start)
    closing = with_deduction(
        hist,
        Priced(
            closing_piece(catalog, plan, sub, customer, closed, sub.cycle, ctx, hist),
            "close",
            sub.cycle,
            sub.catalog_version_id,
        ),
    )
    closing += late_pieces(session, ctx, catalog, sub, closed.start)
    arrears = Arrears(closed, plan.id, sub.catalog_version_id, sub.quantity)
    sub.last_billed_at = now
    if sub.cancel_at_period_end:
        doc, _ = issue_document(
            session,
            sub,
            customer,
            closing,
            reason="final",
            billing_key=f"final:{closed.end.isoformat()}",
            now=now,
            period=closed,
            arrears=arrears,
            catalog=catalog,
        )
        sub.status = "canceled"
        sub.ended_at = closed.end_at
        sub.next_run_at = None
        add_event(session, "subscription.canceled", sub.customer_id, subscription_event(sub, ended=True), time=now)
        return StepResult(sub.id, "ended", now, doc.id, ["subscription.canceled"])
    if sub.pause_at_period_end:
        return _pause_at_close(session, sub, customer, closing, closed, arrears, catalog, now)

    new_catalog, changed = _take_pending(session, sub, catalog, plan)
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
    opening = opening_piece(new_catalog, new_plan, sub, customer, new_period, sub.cycle, ctx)
    doc, _ = issue_document(
        session,
        sub,
        customer,
        [Priced(opening, "open", sub.cycle, sub.catalog_version_id), *closing],
        reason="cycle",
        billing_key=f"period:{new_period.start.isoformat()}",
        now=now,
        period=new_period,
        arrears=arrears,
        catalog=new_catalog,
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


def _pause_at_close(
    session: Session,
    sub: Subscription,
    customer: Customer,
    closing: list[Priced],
    closed: Period,
    arrears: Arrears,
    catalog: Catalog,
    now: datetime,
) -> StepResult:
    """The period paid for is over and the pause takes effect: its usage is billed as at any
    close, and no new period opens (nothing is invoiced until `resume_subscription`)."""
    doc, _ = issue_document(
        session,
        sub,
        customer,
        closing,
        reason="pause",
        billing_key=f"pause:{closed.end.isoformat()}",
        now=now,
        period=closed,
        arrears=arrears,
        catalog=catalog,
    )
    sub.status = "paused"
    sub.pause_at_period_end = False
    sub.paused_at = closed.end_at
    sub.next_run_at = None
    add_event(
        session,
        "subscription.changed",
        sub.customer_id,
        subscription_event(sub, changes={"status": {"from": "active", "to": "paused"}}, effective=str(closed.end)),
        time=now,
    )
    return StepResult(sub.id, "paused", now, doc.id, ["subscription.changed"])


def catch_up(
    session: Session,
    sub: Subscription,
    customer: Customer,
    now: datetime,
    promotions: PromotionSource | None = None,
    limit: int = 10_000,
) -> list[StepResult]:
    """Run every step due for one subscription (used before changing it)."""
    ctx = StepContext(UsageSource(session), promotions)
    out = []
    for _ in range(limit):
        r = run_step(session, sub, customer, now, ctx)
        if r is None:
            break
        out.append(r)
    return out
