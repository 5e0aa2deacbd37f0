"""Subscriptions: create (trial, quantity, coupon), upgrade now with proration, downgrade at
period end, change quantity (prorated), cancel now or at period end, reactivate, and
one-time purchases, which invoice at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.clock import Clock
from engine.periods import Period
from engine.pricing import CouponError, check_redeemable, price_period
from engine.pricing.document import Document
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version, get_version, latest_version_for_plan
from engine.sales.common import money, new_id, now_of, number, quantity_of
from engine.sales.customers import load_customer
from engine.sales.cycle import (
    TRIAL_NOTICE,
    BatchUsage,
    Priced,
    StepContext,
    UsageSource,
    advance_amount,
    at_midnight,
    catch_up,
    closing_piece,
    issue_document,
    late_due_at,
    late_pieces,
    late_since,
    open_first_period,
    opening_piece,
    plan_period,
    price_pieces,
    subscription_event,
)
from engine.sales.errors import Conflict, NotFound, SalesError
from engine.sales.invoicing import (
    EVENTS,
    LINES,
    Arrears,
    CreditSettlement,
    credit_note_to_dict,
    emit,
    invoice_summary,
    lock_counter,
    next_number,
)
from engine.sales.ledger import LEDGER, PeriodHistory, histories, history
from engine.sales.ledger import write as write_ledger
from engine.sales.models import CreditNote, Customer, Invoice, InvoiceLine, Subscription
from engine.store import add_event, add_events

ZERO = Decimal(0)
_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365, "once": 1}


def load_subscription(session: Session, subscription_id: Any, *, lock: bool = True) -> Subscription:
    if not isinstance(subscription_id, str) or not subscription_id:
        raise SalesError("subscription_id", "required: a subscription id")
    stmt = select(Subscription).where(Subscription.id == subscription_id)
    if lock:
        stmt = stmt.with_for_update()
    sub = session.scalars(stmt).first()
    if sub is None:
        raise NotFound("subscription_id", f"unknown subscription {subscription_id!r}")
    return sub


def _document(doc: Invoice | CreditNote | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    if isinstance(doc, Invoice):
        return {"type": "invoice", **invoice_summary(doc)}
    return {"type": "credit_note", **credit_note_to_dict(doc)}


def subscription_to_dict(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "customer_id": sub.customer_id,
        "plan": sub.plan_id,
        "catalog": sub.catalog,
        "catalog_version_id": sub.catalog_version_id,
        "interval": sub.interval,
        "quantity": number(sub.quantity),
        "status": sub.status,
        "start_date": sub.start_date.isoformat(),
        "trial_end": sub.trial_end.isoformat() if sub.trial_end else None,
        "current_period": (
            {"start": sub.period_start.isoformat(), "end": sub.period_end.isoformat()}
            if sub.period_start and sub.period_end
            else None
        ),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": sub.canceled_at.isoformat() if sub.canceled_at else None,
        "ended_at": sub.ended_at.isoformat() if sub.ended_at else None,
        "pending": {
            "plan": sub.pending_plan_id,
            "quantity": number(sub.pending_quantity) if sub.pending_quantity is not None else None,
            "catalog_version_id": sub.pending_version_id,
        },
        "coupon": sub.coupon_code,
        "payment_method": sub.payment_method,
        "next_run_at": sub.next_run_at.isoformat() if sub.next_run_at else None,
        # Usage that arrived for a period already billed, billed at this time (docs/sales.md).
        "late_usage_due_at": due.isoformat() if (due := late_due_at(sub)) else None,
    }


def _result(sub: Subscription, doc: Invoice | CreditNote | None = None, **extra: Any) -> dict[str, Any]:
    out = subscription_to_dict(sub)
    out["document"] = _document(doc)
    out.update(extra)
    return out


def create_subscription(
    session: Session,
    customer_id: str,
    plan: str,
    *,
    clock: Clock,
    quantity: Any = None,
    coupon: str | None = None,
    payment_method: str | None = None,
    trial_days: int | None = None,
    catalog_version: int | None = None,
    id: str | None = None,
    promotions: PromotionSource | None = None,
) -> dict[str, Any]:
    """Subscribe a customer to the latest version of `plan` (or to `catalog_version`, a
    version number of the plan's catalog). Without a trial the first period's in-advance
    charges are invoiced now; with one, when the trial ends. A one-time plan invoices at once
    and completes."""
    now = now_of(clock)
    customer = load_customer(session, customer_id)
    q = quantity_of(quantity)
    version, catalog, plan_obj = latest_version_for_plan(session, plan)
    if catalog_version is not None:
        if isinstance(catalog_version, bool) or not isinstance(catalog_version, int):
            raise SalesError("catalog_version", "a version number")
        version = get_version(session, version.catalog, catalog_version)
        catalog = catalog_for_version(session, version.id)
        if plan not in catalog.plans:
            raise NotFound("plan", f"version {catalog_version} of catalog {version.catalog!r} has no plan {plan!r}")
        plan_obj = catalog.plan(plan)
    if customer.currency and customer.currency != catalog.currency:
        # What is stored clashes (the customer's currency), not the request's shape.
        raise Conflict("plan", f"plan {plan!r} is priced in {catalog.currency}; customer pays in {customer.currency}")
    if trial_days is not None and (isinstance(trial_days, bool) or not isinstance(trial_days, int) or trial_days < 0):
        raise SalesError("trial_days", "a whole number of days, 0 or more")
    today = now.date()
    if coupon:
        if coupon not in catalog.coupons:
            raise NotFound("coupon", f"unknown coupon {coupon!r}")
        used = session.scalar(select(func.count()).select_from(Subscription).where(Subscription.coupon_code == coupon))
        try:
            check_redeemable(catalog.coupons[coupon], plan, today, int(used or 0))
        except CouponError as exc:  # expired, another plan's, used up: the stored coupon says no
            raise Conflict("coupon", str(exc)) from None
    if id is not None and session.get(Subscription, id) is not None:
        raise Conflict("id", f"subscription {id!r} already exists")
    trial = plan_obj.trial_days if trial_days is None else trial_days
    if plan_obj.interval == "once":
        trial = 0
    lock_counter(session, "invoice", now.year)
    sub = Subscription(
        id=id or new_id("sub"),
        customer_id=customer.id,
        plan_id=plan,
        catalog=version.catalog,
        catalog_version_id=version.id,
        interval=plan_obj.interval,
        quantity=q,
        status="trialing" if trial else "active",
        created_at=now,
        start_date=today,
        trial_end=today + timedelta(days=trial) if trial else None,
        trial_notice_sent=False,
        anchor=today + timedelta(days=trial),
        period_index=0,
        cycle=0,
        cancel_at_period_end=False,
        coupon_code=coupon or None,
        coupon_first_cycle=0 if coupon else None,
        payment_method=payment_method or customer.payment_method,
        changes=0,
    )
    session.add(sub)
    session.flush()
    doc: Invoice | CreditNote | None = None
    if plan_obj.interval == "once":
        doc = _one_time(session, sub, customer, catalog, plan_obj, now, promotions)
    elif trial:
        end_at = at_midnight(sub.anchor)
        sub.next_run_at = end_at - TRIAL_NOTICE
        add_event(session, "subscription.created", customer.id, subscription_event(sub), time=now)
        if sub.next_run_at <= now:
            sub.trial_notice_sent = True
            sub.next_run_at = end_at
            add_event(session, "subscription.trial_will_end", customer.id, subscription_event(sub), time=now)
        return _result(sub)
    else:
        doc = open_first_period(
            session, sub, customer, catalog, plan_obj, now, "start", StepContext(UsageSource(session), promotions)
        )
    add_event(session, "subscription.created", customer.id, subscription_event(sub), time=now)
    return _result(sub, doc)


def _one_time(
    session: Session,
    sub: Subscription,
    customer: Customer,
    catalog: Catalog,
    plan: Plan,
    now: datetime,
    promotions: PromotionSource | None,
) -> Invoice | CreditNote:
    """A one-time purchase: its one period opened and closed on one invoice."""
    period = plan_period(plan, sub.anchor, 0)
    ctx = StepContext(UsageSource(session), promotions)
    opening = opening_piece(catalog, plan, sub, customer, period, 0, ctx)
    closing = closing_piece(catalog, plan, sub, customer, period, 0, ctx, PeriodHistory())
    sub.status = "completed"
    sub.period_start, sub.period_end = period.start, period.end
    sub.ended_at = now
    sub.next_run_at = None
    sub.last_billed_at = now
    doc, _ = issue_document(
        session, sub, customer,
        [Priced(opening, "once", 0, sub.catalog_version_id), Priced(closing, "once", 0, sub.catalog_version_id)],
        reason="once", billing_key="once", now=now, period=period,
    )
    return doc


def _rate(plan: Plan, quantity: Decimal) -> Decimal:
    return advance_amount(plan, quantity) / _DAYS.get(plan.interval, 30) / plan.interval_count


def _prepare(
    session: Session, subscription_id: str, clock: Clock, promotions: PromotionSource | None = None
) -> tuple[Subscription, Customer, datetime]:
    now = now_of(clock)
    lock_counter(session, "invoice", now.year)
    sub = load_subscription(session, subscription_id)
    customer = session.get(Customer, sub.customer_id)
    assert customer is not None
    catch_up(session, sub, customer, now, promotions)
    if sub.status in ("canceled", "completed"):
        raise Conflict("subscription_id", f"subscription {sub.id} is {sub.status}")
    return sub, customer, now


def change_subscription(
    session: Session,
    subscription_id: str,
    *,
    clock: Clock,
    plan: str | None = None,
    quantity: Any = None,
    at: str | None = None,
    promotions: PromotionSource | None = None,
) -> dict[str, Any]:
    """Change plan and/or quantity. An upgrade (the plan is in `upgrade_to`, or costs more
    per day) and a quantity change apply now, prorated by days: the unused part of the old
    charges is credited and the rest of the period charged at the new ones (an invoice, or a
    credit note when the change owes the customer). A downgrade applies at the period end.
    `at` ("now" or "period_end") overrides the choice."""
    if plan is None and quantity is None:
        raise SalesError("plan", "give a plan, a quantity or both")
    if at not in (None, "now", "period_end"):
        raise SalesError("at", "now or period_end")
    new_q = quantity_of(quantity) if quantity is not None else None
    sub, customer, now = _prepare(session, subscription_id, clock, promotions)
    catalog = catalog_for_version(session, sub.catalog_version_id)
    old_plan = catalog.plan(sub.plan_id)
    new_catalog, new_version_id = catalog, sub.catalog_version_id
    if plan is not None and plan != sub.plan_id:
        version, new_catalog, new_plan = latest_version_for_plan(session, plan)
        new_version_id = version.id
        # Both depend on what is stored (the subscription's catalog, the plan): a conflict.
        if new_catalog.name != catalog.name:
            raise Conflict("plan", f"plan {plan!r} is in catalog {new_catalog.name!r}, not {catalog.name!r}")
        if new_plan.interval == "once":
            raise Conflict("plan", f"plan {plan!r} is a one-time purchase; buy it with a new subscription")
    else:
        new_plan = old_plan
        plan = None
    target_q = new_q if new_q is not None else sub.quantity
    if plan is None and target_q == sub.quantity:
        raise Conflict("quantity", f"the subscription already has quantity {sub.quantity}")
    if at is None:
        if plan is None:
            at = "now"
        else:
            upgrade = plan in old_plan.upgrade_to or _rate(new_plan, target_q) >= _rate(old_plan, sub.quantity)
            at = "now" if upgrade else "period_end"
    if sub.status == "trialing":
        at = "now"  # nothing billed yet: the trial continues on the new terms
    if at == "period_end" and sub.cancel_at_period_end:
        # It would be pending on a subscription that ends then: never applied, yet reported.
        raise Conflict("at", f"subscription {sub.id} is cancelled at the period end; a change then would never "
                             "apply (reactivate it first, or change it now)")
    sub.changes += 1
    change = {
        "plan": {"from": sub.plan_id, "to": new_plan.id} if plan else None,
        "quantity": {"from": number(sub.quantity), "to": number(target_q)} if target_q != sub.quantity else None,
        "at": at,
    }
    if at == "period_end":
        sub.pending_plan_id = new_plan.id if plan else sub.pending_plan_id
        sub.pending_version_id = new_version_id if plan else sub.pending_version_id
        sub.pending_quantity = target_q if target_q != sub.quantity else sub.pending_quantity
        effective = sub.period_end or sub.trial_end
        add_event(
            session,
            "subscription.changed",
            sub.customer_id,
            subscription_event(sub, changes=change, effective=effective.isoformat() if effective else None),
            time=now,
        )
        return _result(sub, None, effective=effective.isoformat() if effective else None)

    doc: Invoice | CreditNote | None = None
    if sub.status != "trialing":
        ctx = StepContext(UsageSource(session), promotions)
        priced, bill_period = _change_pieces(session, ctx, sub, customer, (catalog, old_plan),
                                             (new_catalog, new_plan, new_version_id), target_q, now.date())
        sub.plan_id = new_plan.id
        sub.catalog_version_id = new_version_id
        sub.interval = new_plan.interval
        sub.quantity = target_q
        if sub.pending_plan_id == new_plan.id:
            sub.pending_plan_id = None
        doc, _ = issue_document(session, sub, customer, priced, reason="change", billing_key=f"change:{sub.changes}",
                                now=now, period=bill_period, catalog=new_catalog)
    sub.plan_id = new_plan.id
    sub.catalog_version_id = new_version_id
    sub.interval = new_plan.interval
    sub.quantity = target_q
    add_event(session, "subscription.changed", sub.customer_id, subscription_event(sub, changes=change), time=now)
    return _result(sub, doc)


def _change_pieces(
    session: Session,
    ctx: StepContext,
    sub: Subscription,
    customer: Customer,
    old: tuple[Catalog, Plan],
    new: tuple[Catalog, Plan, int],
    quantity: Decimal,
    today: date,
) -> tuple[list[Priced], Period]:
    """A change now: the unused days of the old terms given back exactly as they were charged
    (same discounts), and the rest of the period at the new terms. A change of interval ends
    the period today (its usage so far is billed) and opens a new one in full."""
    assert sub.period_start is not None and sub.period_end is not None
    catalog, old_plan = old
    new_catalog, new_plan, new_version_id = new
    period = Period(sub.period_start, sub.period_end)
    hist = history(session, sub.id, period.start)
    credit = opening_piece(catalog, old_plan, sub, customer, period, sub.cycle, ctx, charge_from=today, credit=True,
                           before=hist.total(), discounts=hist.discounts("advance", old_plan.id))
    priced = [Priced(credit, "change", sub.cycle, sub.catalog_version_id)]
    if (new_plan.interval, new_plan.interval_count) == (old_plan.interval, old_plan.interval_count):
        charge = opening_piece(new_catalog, new_plan, sub, customer, period, sub.cycle, ctx, charge_from=today,
                               quantity=quantity, before=hist.total())
        return [*priced, Priced(charge, "change", sub.cycle, new_version_id)], period
    if today > period.start:
        closing = closing_piece(catalog, old_plan, sub, customer, period, sub.cycle, ctx, hist, until=today)
        priced.append(Priced(closing, "close", sub.cycle, sub.catalog_version_id))
    sub.anchor = today
    sub.period_index = 0
    new_period = plan_period(new_plan, today, 0)
    sub.period_start, sub.period_end = new_period.start, new_period.end
    sub.next_run_at = new_period.end_at
    sub.cycle += 1
    opening = opening_piece(new_catalog, new_plan, sub, customer, new_period, sub.cycle, ctx, quantity=quantity)
    return [*priced, Priced(opening, "open", sub.cycle, new_version_id)], new_period


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
    the unused in-advance time credited (`prorate`)."""
    if at not in ("now", "period_end"):
        raise SalesError("at", "now or period_end")
    sub, customer, now = _prepare(session, subscription_id, clock, promotions)
    if at == "period_end" and sub.status == "active":
        _cancel_at_period_end(session, sub, now)
        return _result(sub)
    doc: Invoice | CreditNote | None = None
    if sub.status == "active":
        account = period_accounts(session, [sub])[sub.id]
        final = _final_bill(session, StepContext(UsageSource(session), promotions), sub, customer, now,
                            prorate, account)
        doc = _issue_final(session, sub, customer, final, now)
    _end_now(session, sub, now)
    return _result(sub, doc)


@dataclass(frozen=True)
class Cancellation:
    """One item of `cancel_subscriptions`: the arguments of one `cancel_subscription`."""

    subscription_id: str
    at: str = "now"
    prorate: bool = True


def cancel_subscriptions(
    session: Session, items: Sequence[Cancellation], *, clock: Clock, promotions: PromotionSource | None = None
) -> list[dict[str, Any]]:
    """`cancel_subscription` for many subscriptions in one transaction, with the same rows,
    documents, numbers and events as calling it for each item in order, in a few statements:
    one counter lock, one locking read of the subscriptions and one of their customers, one
    usage read, one number taken per document kind; the ORM writes the rest in batches.

    Every item is checked before anything is written: a bad `at`, an unknown, repeated or
    already ended subscription raises (`SalesError`) and the call writes nothing. A
    subscription with a period still to close (its billing run has not caught up) makes the
    call cancel one item at a time, as `cancel_subscription`, which bills that first."""
    for i, item in enumerate(items):
        if item.at not in ("now", "period_end"):
            raise SalesError(f"items[{i}].at", "now or period_end")
        if not isinstance(item.subscription_id, str) or not item.subscription_id:
            raise SalesError(f"items[{i}].subscription_id", "required: a subscription id")
    ids = [item.subscription_id for item in items]
    repeated = sorted({sid for sid in ids if ids.count(sid) > 1}) if len(set(ids)) < len(ids) else []
    if repeated:
        raise SalesError("items", f"subscription {repeated[0]!r} appears more than once")
    if not items:
        return []
    now = now_of(clock)
    lock_counter(session, "invoice", now.year)  # first, as every writer of numbers: no deadlock
    subs: dict[str, Subscription] = {}
    for start in range(0, len(ids), _CHUNK):
        # Sorted, so two callers lock overlapping rows in the same order; populate_existing:
        # what was read before the lock may be stale.
        stmt = (select(Subscription).where(Subscription.id.in_(sorted(ids)[start:start + _CHUNK]))
                .order_by(Subscription.id).with_for_update().execution_options(populate_existing=True))
        subs.update((s.id, s) for s in session.scalars(stmt))
    for sid in ids:
        if sid not in subs:
            raise NotFound("subscription_id", f"unknown subscription {sid!r}")
        if subs[sid].status in ("canceled", "completed"):
            raise Conflict("subscription_id", f"subscription {sid} is {subs[sid].status}")
    if any(s.next_run_at is not None and s.next_run_at <= now for s in subs.values()):
        return [cancel_subscription(session, i.subscription_id, clock=clock, at=i.at, prorate=i.prorate,
                                    promotions=promotions) for i in items]
    customers = {c.id: c for c in session.scalars(
        select(Customer).where(Customer.id.in_(sorted({s.customer_id for s in subs.values()}))))}
    billed = [i for i in items if i.at == "now" and subs[i.subscription_id].status == "active"]
    billed_subs = [subs[i.subscription_id] for i in billed]
    ctx = StepContext(_preloaded_usage(session, billed_subs), promotions,
                      histories(session, [(s.id, s.period_start) for s in billed_subs if s.period_start]))
    accounts = period_accounts(session, billed_subs)
    out: list[dict[str, Any]] = []
    with session.no_autoflush:
        finals = {i.subscription_id: _final_bill(session, ctx, subs[i.subscription_id],
                                                 customers[subs[i.subscription_id].customer_id], now, i.prorate,
                                                 accounts[i.subscription_id])
                  for i in billed}
        # Numbered in item order, as one call after the other would number them.
        credits = sum(1 for f in finals.values() if f.doc.total < ZERO)
        numbers = {"invoice": _first_number(session, "invoice", now.year, len(finals) - credits),
                   "credit_note": _first_number(session, "credit_note", now.year, credits)}
        # The documents' lines and every event are collected and written in one INSERT each.
        lines: list[dict[str, Any]] = []
        events: list[tuple[str, str | None, dict[str, Any], datetime]] = []
        ledger_rows: list[dict[str, Any]] = []
        previous = session.info.get(LINES), session.info.get(EVENTS), session.info.get(LEDGER)
        session.info[LINES], session.info[EVENTS], session.info[LEDGER] = lines, events, ledger_rows
        try:
            for item in items:
                sub = subs[item.subscription_id]
                if item.at == "period_end" and sub.status == "active":
                    _cancel_at_period_end(session, sub, now)
                    out.append(_result(sub))
                    continue
                doc: Invoice | CreditNote | None = None
                final = finals.get(sub.id)
                if final is not None:
                    kind = "credit_note" if final.doc.total < ZERO else "invoice"
                    doc = _issue_final(session, sub, customers[sub.customer_id], final, now, number=numbers[kind])
                    numbers[kind] += 1
                _end_now(session, sub, now)
                out.append(_result(sub, doc))
        finally:
            for key, value in zip((LINES, EVENTS, LEDGER), previous, strict=True):
                if value is None:
                    session.info.pop(key, None)
                else:
                    session.info[key] = value
    if lines:
        session.flush()  # the invoices first: lines reference them
        session.execute(insert(InvoiceLine), lines)
    if ledger_rows:
        write_ledger(session, ledger_rows)
    add_events(session, events)
    return out


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
    live = [s for s in subs if s.period_start is not None and s.period_end is not None]
    customers = sorted({s.customer_id for s in live})
    if types and live:
        start = min(at_midnight(s.period_start) for s in live if s.period_start is not None)
        end = max(at_midnight(s.period_end) for s in live if s.period_end is not None)
        src.preload(customers, start, end, types)
    billed = [s for s in live if late_since(s) is not None and s.period_start is not None]
    if late and billed:
        since = min(t for t in map(late_since, billed) if t is not None)
        before = max(at_midnight(s.period_start) for s in billed if s.period_start is not None)
        src.preload_late(customers, since, before, late)
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
            .where(tuple_(Invoice.subscription_id, Invoice.period_start).in_(keys[start:start + _CHUNK]),
                   Invoice.status.in_(_SETTLED))
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
    session: Session, ctx: StepContext, sub: Subscription, customer: Customer, now: datetime, prorate: bool,
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
    priced: list[Priced] = []
    if prorate and today < period.end:
        credit = opening_piece(catalog, plan, sub, customer, period, sub.cycle, ctx, charge_from=today, credit=True,
                               before=hist.total(), discounts=hist.discounts("advance", plan.id))
        priced.append(Priced(credit, "cancel", sub.cycle, sub.catalog_version_id))
    until = today if today < period.end else None
    closing = closing_piece(catalog, plan, sub, customer, period, sub.cycle, ctx, hist, until=until)
    priced.append(Priced(closing, "close", sub.cycle, sub.catalog_version_id))
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
        subscription_event(sub, at="period_end", ends_at=sub.period_end.isoformat() if sub.period_end else None),
        time=now,
    )


def _end_now(session: Session, sub: Subscription, now: datetime) -> None:
    sub.status = "canceled"
    sub.canceled_at = sub.canceled_at or now
    sub.ended_at = now
    sub.next_run_at = None
    sub.last_billed_at = now
    emit(session, "subscription.canceled", sub.customer_id, subscription_event(sub, at="now"), time=now)


def reactivate_subscription(
    session: Session, subscription_id: str, *, clock: Clock, promotions: PromotionSource | None = None
) -> dict[str, Any]:
    """Undo a cancellation at period end, before the period ends."""
    sub, _customer, now = _prepare(session, subscription_id, clock, promotions)
    if not sub.cancel_at_period_end:
        raise Conflict("subscription_id", f"subscription {sub.id} is not set to cancel")
    sub.cancel_at_period_end = False
    sub.canceled_at = None
    add_event(
        session,
        "subscription.changed",
        sub.customer_id,
        subscription_event(sub, changes={"reactivated": True}),
        time=now,
    )
    return _result(sub)


# --- catalog migrations ---------------------------------------------------------------------------


def _migration_targets(
    session: Session, catalog: str, version: int | None, plan: str | None
) -> tuple[Any, Catalog, list[Subscription]]:
    target = get_version(session, catalog, version)
    new_catalog = catalog_for_version(session, target.id)
    stmt = select(Subscription).where(
        Subscription.catalog == catalog,
        Subscription.status.in_(("active", "trialing")),
        Subscription.catalog_version_id != target.id,
    )
    if plan is not None:
        stmt = stmt.where(Subscription.plan_id == plan)
    return target, new_catalog, list(session.scalars(stmt.order_by(Subscription.id)))


def _next_period_amount(
    session: Session, catalog: Catalog, sub: Subscription, plan_id: str
) -> tuple[Period | None, Decimal]:
    plan = catalog.plan(plan_id)
    index = sub.period_index + 1 if sub.status == "active" else 0
    period = plan_period(plan, sub.anchor, index)
    usage_period = Period(sub.period_start, sub.period_end) if sub.period_start and sub.period_end else None
    from engine.sales.cycle import usage_for

    usage = usage_for(UsageSource(session), catalog, plan, sub.customer_id, usage_period) if usage_period else {}
    bill = price_period(catalog, plan, period, quantity=sub.pending_quantity or sub.quantity, usage=usage, minimum=True)
    return period, bill.total


def preview_migration(
    session: Session, catalog: str, version: int | None = None, *, plan: str | None = None
) -> list[dict[str, Any]]:
    """Which subscriptions a migration to `version` (default: the latest) would move, and
    what their next period costs before and after (in-advance charges plus the current
    period's usage priced both ways, before tax)."""
    target, new_catalog, subs = _migration_targets(session, catalog, version, plan)
    out = []
    for sub in subs:
        plan_id = sub.pending_plan_id or sub.plan_id
        old_catalog = catalog_for_version(session, sub.catalog_version_id)
        period, old_amount = _next_period_amount(session, old_catalog, sub, plan_id)
        row: dict[str, Any] = {
            "subscription_id": sub.id,
            "customer_id": sub.customer_id,
            "plan": plan_id,
            "from_version_id": sub.catalog_version_id,
            "to_version": target.version,
            "to_version_id": target.id,
            "effective": period.start.isoformat() if period else None,
            "old_amount": money(old_amount, old_catalog.currency),
        }
        if plan_id not in new_catalog.plans:
            row.update(new_amount=None, difference=None, blocked=f"plan {plan_id!r} is not in version {target.version}")
        else:
            _, new_amount = _next_period_amount(session, new_catalog, sub, plan_id)
            row.update(
                new_amount=money(new_amount, new_catalog.currency),
                difference=money(new_amount - old_amount, new_catalog.currency),
                blocked=None,
            )
        out.append(row)
    return out


def migrate_subscriptions(
    session: Session,
    catalog: str,
    version: int | None = None,
    *,
    clock: Clock,
    plan: str | None = None,
    subscription_ids: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Move grandfathered subscriptions to `version` from their next period on. Returns the
    preview rows of the subscriptions migrated (blocked ones are left as they are)."""
    now = now_of(clock)
    preview = preview_migration(session, catalog, version, plan=plan)
    done = []
    for row in preview:
        if row["blocked"] or (subscription_ids is not None and row["subscription_id"] not in subscription_ids):
            continue
        sub = load_subscription(session, row["subscription_id"])
        sub.pending_version_id = row["to_version_id"]
        add_event(
            session,
            "subscription.changed",
            sub.customer_id,
            subscription_event(sub, changes={"catalog_version": row}, effective=row["effective"]),
            time=now,
        )
        done.append(row)
    return done


def get_subscription(session: Session, subscription_id: str) -> dict[str, Any]:
    return subscription_to_dict(load_subscription(session, subscription_id, lock=False))


def list_subscriptions(session: Session, customer_id: str) -> list[dict[str, Any]]:
    load_customer(session, customer_id)
    subs = session.scalars(
        select(Subscription)
        .where(Subscription.customer_id == customer_id)
        .order_by(Subscription.created_at, Subscription.id)
    )
    return [subscription_to_dict(s) for s in subs]
