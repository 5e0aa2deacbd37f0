"""Cancelling subscriptions, one or many in one transaction (`cancel_subscription` is
`cancel_subscriptions` with one item): at the period end, or now with the final document
(the usage so far invoiced, the unused in-advance time credited)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.clock import Clock
from engine.periods import Period, iso_or_none
from engine.pricing.document import Document
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.collectors import EVENTS, LINES, emit
from engine.sales.common import now_of
from engine.sales.credit_notes import CreditSettlement
from engine.sales.due import at_midnight, late_since, open_periods, period_due
from engine.sales.errors import Conflict, NotFound, SalesError, required_id
from engine.sales.invoicing import Arrears
from engine.sales.issuing import issue_document, price_pieces
from engine.sales.late_usage import late_pieces
from engine.sales.ledger import LEDGER, histories
from engine.sales.ledger import write as write_ledger
from engine.sales.models import CreditNote, Customer, Invoice, InvoiceLine, Subscription
from engine.sales.numbering import lock_counter, next_number
from engine.sales.pieces import Priced, StepContext, closing_piece, unused_credit, with_deduction
from engine.sales.step_events import subscription_event
from engine.sales.subscriptions import ZERO, prepare_change, subscription_result
from engine.sales.terms import SubscriptionPeriod
from engine.sales.usage_source import BatchUsage, UsageSource
from engine.store import add_events


@dataclass(frozen=True)
class Cancellation:
    """One item of `cancel_subscriptions`: the arguments of one `cancel_subscription`."""

    subscription_id: str
    at: str = "now"
    prorate: bool = True


def cancel_subscription(
    session: Session,
    subscription_id: str,
    *,
    clock: Clock,
    at: str = "period_end",
    prorate: bool = True,
    promotions: PromotionSource | None = None,
) -> dict[str, Any]:
    """Cancel at the period end (the subscription runs to the end of what was paid; the
    final invoice bills the last period's usage), or now: the usage so far is invoiced and
    the unused in-advance time credited (`prorate`). `cancel_subscriptions` with one item
    (the single call keeps its own argument errors)."""
    if at not in ("now", "period_end"):
        raise SalesError("at", "now or period_end")
    required_id(subscription_id, "subscription_id", "a subscription id")
    item = Cancellation(subscription_id, at=at, prorate=prorate)
    return cancel_subscriptions(session, [item], clock=clock, promotions=promotions)[0]


def _cancel_after_catching_up(
    session: Session, item: Cancellation, *, clock: Clock, promotions: PromotionSource | None
) -> dict[str, Any]:
    """One cancellation, after billing the periods the billing run has not closed yet
    (`catch_up`): what `cancel_subscriptions` does for a subscription behind its schedule."""
    at, prorate = item.at, item.prorate
    sub, customer, now = prepare_change(session, item.subscription_id, clock, promotions, paused_ok=True)
    if at == "period_end" and sub.status == "active":
        _cancel_at_period_end(session, sub, now)
        return subscription_result(sub)
    doc: Invoice | CreditNote | None = None
    if sub.status == "active":
        account = period_accounts(session, [sub])[sub.id]
        final = _final_bill(
            session, StepContext(UsageSource(session), promotions), sub, customer, now, prorate, account
        )
        doc = _issue_final(session, sub, customer, final, now)
    _end_now(session, sub, now)
    return subscription_result(sub, doc)


def cancel_subscriptions(
    session: Session, items: Sequence[Cancellation], *, clock: Clock, promotions: PromotionSource | None = None
) -> list[dict[str, Any]]:
    """Cancel many subscriptions in one transaction (`cancel_subscription` is this with one
    item), with the same rows, documents, numbers and events as one after the other, in order,
    in a few statements:
    one counter lock, one locking read of the subscriptions and one of their customers, one
    usage read, one number taken per document kind; the ORM writes the rest in batches.

    Every item is checked before anything is written: a bad `at`, an unknown, repeated or
    already ended subscription raises (`SalesError`) and the call writes nothing. A
    subscription with a period still to close (its billing run has not caught up) makes the
    call cancel one item at a time, each after billing what is due (`catch_up`)."""
    _check_items(items)
    if not items:
        return []
    now = now_of(clock)
    lock_counter(session, "invoice", now.year)  # first, as every writer of numbers: no deadlock
    subs = _lock_cancellable(session, [item.subscription_id for item in items])
    if any(period_due(s, now) for s in subs.values()):
        return [_cancel_after_catching_up(session, i, clock=clock, promotions=promotions) for i in items]
    customers = {
        c.id: c
        for c in session.scalars(
            select(Customer).where(Customer.id.in_(sorted({s.customer_id for s in subs.values()})))
        )
    }
    billed = [subs[i.subscription_id] for i in items if i.at == "now" and subs[i.subscription_id].status == "active"]
    ctx = StepContext(
        _preloaded_usage(session, billed),
        promotions,
        histories(session, [(s.id, s.period_start) for s in billed if s.period_start]),
    )
    accounts = period_accounts(session, billed)
    prorate = {i.subscription_id: i.prorate for i in items}
    with session.no_autoflush:
        finals = {
            s.id: _final_bill(session, ctx, s, customers[s.customer_id], now, prorate[s.id], accounts[s.id])
            for s in billed
        }
        with _collected_rows(session) as rows:
            out = _end_each(session, items, subs, customers, finals, now)
    rows.write(session)
    return out


def _check_items(items: Sequence[Cancellation]) -> None:
    """A bad `at`, a missing or repeated id raises, naming the item."""
    for i, item in enumerate(items):
        if item.at not in ("now", "period_end"):
            raise SalesError(f"items[{i}].at", "now or period_end")
        required_id(item.subscription_id, f"items[{i}].subscription_id", "a subscription id")
    repeated = sorted(sid for sid, n in Counter(item.subscription_id for item in items).items() if n > 1)
    if repeated:
        raise SalesError("items", f"subscription {repeated[0]!r} appears more than once")


def _lock_cancellable(session: Session, ids: list[str]) -> dict[str, Subscription]:
    """The subscriptions, locked; an unknown or already ended one raises."""
    subs: dict[str, Subscription] = {}
    for start in range(0, len(ids), _CHUNK):
        # Sorted, so two callers lock overlapping rows in the same order; populate_existing:
        # what was read before the lock may be stale.
        stmt = (
            select(Subscription)
            .where(Subscription.id.in_(sorted(ids)[start : start + _CHUNK]))
            .order_by(Subscription.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        subs.update((s.id, s) for s in session.scalars(stmt))
    for sid in ids:
        if sid not in subs:
            raise NotFound("subscription_id", f"unknown subscription {sid!r}")
        if subs[sid].status in ("canceled", "completed"):
            raise Conflict("subscription_id", f"subscription {sid} is {subs[sid].status}")
    return subs


def _end_each(
    session: Session,
    items: Sequence[Cancellation],
    subs: dict[str, Subscription],
    customers: dict[str, Customer],
    finals: dict[str, _Final],
    now: datetime,
) -> list[dict[str, Any]]:
    """Each item in order: marked to end with its period, or ended now with its final
    document, numbered in item order as one call after the other would number them."""
    credits = sum(1 for f in finals.values() if f.doc.total < ZERO)
    numbers = {
        "invoice": _first_number(session, "invoice", now.year, len(finals) - credits),
        "credit_note": _first_number(session, "credit_note", now.year, credits),
    }
    out: list[dict[str, Any]] = []
    for item in items:
        sub = subs[item.subscription_id]
        if item.at == "period_end" and sub.status == "active":
            _cancel_at_period_end(session, sub, now)
            out.append(subscription_result(sub))
            continue
        doc: Invoice | CreditNote | None = None
        final = finals.get(sub.id)
        if final is not None:
            kind = "credit_note" if final.doc.total < ZERO else "invoice"
            doc = _issue_final(session, sub, customers[sub.customer_id], final, now, number=numbers[kind])
            numbers[kind] += 1
        _end_now(session, sub, now)
        out.append(subscription_result(sub, doc))
    return out


@dataclass
class _Rows:
    """The documents' lines, the events and the ledger rows the cancellations collect, each
    written in one INSERT."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str | None, dict[str, Any], datetime]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)

    def write(self, session: Session) -> None:
        if self.lines:
            session.flush()  # the invoices first: lines reference them
            session.execute(insert(InvoiceLine), self.lines)
        if self.ledger:
            write_ledger(session, self.ledger)
        add_events(session, self.events)


@contextmanager
def _collected_rows(session: Session) -> Iterator[_Rows]:
    """While open, the writers of lines, events and ledger rows collect them (session.info)
    instead of inserting them one by one; what was collecting before is restored after."""
    rows = _Rows()
    keys = (LINES, EVENTS, LEDGER)
    previous = [session.info.get(key) for key in keys]
    session.info[LINES], session.info[EVENTS], session.info[LEDGER] = rows.lines, rows.events, rows.ledger
    try:
        yield rows
    finally:
        for key, value in zip(keys, previous, strict=True):
            if value is None:
                session.info.pop(key, None)
            else:
                session.info[key] = value


_CHUNK = 1000  # ids per IN list


def _first_number(session: Session, kind: str, year: int, count: int) -> int:
    """The first of `count` numbers of a gapless sequence, taken with one update."""
    return next_number(session, kind, year, count) - count + 1 if count else 0


def _preloaded_usage(session: Session, subs: Sequence[Subscription]) -> UsageSource:
    """The usage of these subscriptions' current periods, and the late usage of their closed
    periods, read in one query each."""
    src = BatchUsage(session)
    types: set[str] = set()
    late: set[str] = set()
    for s in subs:
        catalog = catalog_for_version(session, s.catalog_version_id)
        types |= {catalog.metrics[p.metric].event for p in catalog.plan(s.plan_id).prices if p.metric}
        late |= {m.event for m in catalog.metrics.values()}
    live = open_periods(subs)
    if not live:
        return src
    customers = sorted({p.sub.customer_id for p in live})
    src.preload(customers, at_midnight(min(p.start for p in live)), at_midnight(max(p.end for p in live)), types)
    billed = [(t, p.start) for p in live if (t := late_since(p.sub)) is not None]
    if billed:
        src.preload_late(customers, min(t for t, _ in billed), at_midnight(max(start for _, start in billed)), late)
    return src


@dataclass
class PeriodAccount:
    """What the customer owes and paid for a subscription's current period: where the credit
    of a cancellation can go."""

    open: list[Invoice] = field(default_factory=list)  # the period's open invoices, newest first
    paid: Decimal = ZERO  # paid for the period's invoices (payments, and balance credit applied)

    @property
    def owed(self) -> Decimal:
        return sum((inv.amount_due - inv.amount_paid for inv in self.open), ZERO)

    def settle(self, credit: Decimal) -> CreditSettlement:
        """The period's open invoices take the credit first, newest first (the unused days are
        the latest terms'); then the balance, at most what the customer paid for the period. A
        customer who never paid gets no balance credit: it would pay their next invoices with
        money they never gave."""
        out = CreditSettlement()
        left = credit
        for inv in self.open:
            take = min(left, inv.amount_due - inv.amount_paid)
            if take > ZERO:
                out.invoices.append((inv, take))
                left -= take
        out.balance = min(left, self.paid)
        return out


_SETTLED = ("finalized", "paid", "uncollectible", "credited")  # issued and not voided


def period_accounts(session: Session, subs: Sequence[Subscription]) -> dict[str, PeriodAccount]:
    """Each subscription's `PeriodAccount`, from one read of the invoices of their current
    periods (an invoice belongs to the period it opens: a start, renewal or change invoice)."""
    out = {sub.id: PeriodAccount() for sub in subs}
    keys = [(sub.id, sub.period_start) for sub in subs if sub.period_start is not None]
    for start in range(0, len(keys), _CHUNK):
        rows = session.scalars(
            select(Invoice)
            .where(
                tuple_(Invoice.subscription_id, Invoice.period_start).in_(keys[start : start + _CHUNK]),
                Invoice.status.in_(_SETTLED),
            )
            .order_by(Invoice.created_at.desc(), Invoice.number.desc())
        )
        for inv in rows:
            account = out[str(inv.subscription_id)]
            account.paid += inv.amount_paid + inv.credit_applied
            if inv.status == "finalized" and inv.amount_due > inv.amount_paid:
                account.open.append(inv)
    return out


@dataclass
class _Final:
    """The document of a cancellation now, priced, what it bills and where its credit goes."""

    priced: list[Priced]
    doc: Document
    catalog: Catalog
    plan: Plan
    period: Period
    account: PeriodAccount


def _final_bill(
    session: Session,
    ctx: StepContext,
    sub: Subscription,
    customer: Customer,
    now: datetime,
    prorate: bool,
    account: PeriodAccount,
) -> _Final:
    """The unused in-advance days given back (`prorate`) exactly as they were charged, then
    the usage so far with the minimum commitment prorated to the days the period ran, and
    the late usage of periods already closed. Nothing is given back when the period was
    neither paid nor is still owed (its invoice voided or written off): there is nothing
    to credit it against."""
    assert sub.period_start is not None and sub.period_end is not None
    prorate = prorate and (account.owed > ZERO or account.paid > ZERO)
    catalog = catalog_for_version(session, sub.catalog_version_id)
    plan = catalog.plan(sub.plan_id)
    period = Period(sub.period_start, sub.period_end)
    today = now.date()
    hist = ctx.history(session, sub.id, period.start)
    sp = SubscriptionPeriod(catalog, plan, sub, customer, period, sub.cycle)
    priced: list[Priced] = []
    if prorate and today < period.end:
        credit = unused_credit(sp, ctx, hist, today)
        priced.append(Priced(credit, "cancel", sub.cycle, sub.catalog_version_id))
    until = today if today < period.end else None
    closing = closing_piece(sp, ctx, hist, until=until)
    priced += with_deduction(hist, Priced(closing, "close", sub.cycle, sub.catalog_version_id))
    priced += late_pieces(session, ctx, catalog, sub, period.start)  # earlier periods' late usage too
    doc = price_pieces(priced, customer, plan_id=plan.id, period=period, catalog=catalog)
    return _Final(priced, doc, catalog, plan, period, account)


def _issue_final(
    session: Session, sub: Subscription, customer: Customer, final: _Final, now: datetime, *, number: int | None = None
) -> Invoice | CreditNote:
    issued, _ = issue_document(
        session,
        sub,
        customer,
        final.priced,
        reason="cancel",
        billing_key=f"final:{now.date().isoformat()}",
        now=now,
        period=final.period,
        arrears=Arrears(final.period, final.plan.id, sub.catalog_version_id, sub.quantity),
        number=number,
        catalog=final.catalog,
        doc=final.doc,
        settlement=final.account.settle(-final.doc.total) if final.doc.total < ZERO else None,
    )
    return issued


def _cancel_at_period_end(session: Session, sub: Subscription, now: datetime) -> None:
    if sub.cancel_at_period_end:
        return
    sub.cancel_at_period_end = True
    sub.canceled_at = now
    sub.pending_plan_id = sub.pending_version_id = None
    sub.pending_quantity = None
    emit(
        session,
        "subscription.canceled",
        sub.customer_id,
        subscription_event(sub, at="period_end", ends_at=iso_or_none(sub.period_end)),
        time=now,
    )


def _end_now(session: Session, sub: Subscription, now: datetime) -> None:
    sub.status = "canceled"
    sub.canceled_at = sub.canceled_at or now
    sub.ended_at = now
    sub.next_run_at = None
    sub.last_billed_at = now
    emit(session, "subscription.canceled", sub.customer_id, subscription_event(sub, at="now"), time=now)
