"""A subscription's lifecycle: create (trial, quantity, coupon), upgrade now with proration,
downgrade at period end, change quantity (prorated), reactivate, and one-time purchases,
which invoice at once. Cancelling, one or many: sales/cancellation.py; moving subscriptions
to another catalog version: sales/migration.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.model import Catalog, Plan
from engine.clock import Clock
from engine.periods import Period, iso_or_none
from engine.pricing import CouponError, check_redeemable
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version, get_version, latest_version_for_plan
from engine.sales.common import new_id, now_of, number, quantity_of, whole_between
from engine.sales.coupon_credit import grant_coupon_credit
from engine.sales.customers import load_customer
from engine.sales.cycle import catch_up, open_first_period
from engine.sales.due import TRIAL_NOTICE, at_midnight, late_due_at, plan_period
from engine.sales.errors import Conflict, NotFound, SalesError
from engine.sales.invoice_views import credit_note_to_dict, invoice_summary
from engine.sales.issuing import issue_document
from engine.sales.ledger import PeriodHistory, history
from engine.sales.loading import load_by_id
from engine.sales.models import CatalogVersion, CreditNote, Customer, Invoice, Subscription
from engine.sales.numbering import lock_counter
from engine.sales.pieces import (
    Priced,
    StepContext,
    advance_amount,
    closing_piece,
    opening_piece,
    unused_credit,
    with_deduction,
)
from engine.sales.redemptions import coupon_redemption_count
from engine.sales.step_events import subscription_event
from engine.sales.terms import SubscriptionPeriod
from engine.sales.usage_source import UsageSource
from engine.store import add_event

ZERO = Decimal(0)
_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365, "once": 1}


def load_subscription(session: Session, subscription_id: Any, *, lock: bool = True) -> Subscription:
    return load_by_id(session, Subscription, subscription_id, "subscription_id", "subscription", "a", lock=lock)


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
        "trial_end": iso_or_none(sub.trial_end),
        "current_period": (
            {"start": sub.period_start.isoformat(), "end": sub.period_end.isoformat()}
            if sub.period_start and sub.period_end
            else None
        ),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "pause_at_period_end": bool(sub.pause_at_period_end),
        "paused_at": iso_or_none(sub.paused_at),
        "canceled_at": iso_or_none(sub.canceled_at),
        "ended_at": iso_or_none(sub.ended_at),
        "pending": {
            "plan": sub.pending_plan_id,
            "quantity": number(sub.pending_quantity) if sub.pending_quantity is not None else None,
            "catalog_version_id": sub.pending_version_id,
        },
        "coupon": sub.coupon_code,
        "payment_method": sub.payment_method,
        "next_run_at": iso_or_none(sub.next_run_at),
        # Usage that arrived for a period already billed, billed at this time (docs/sales.md).
        "late_usage_due_at": due.isoformat() if (due := late_due_at(sub)) else None,
    }


def subscription_result(sub: Subscription, doc: Invoice | CreditNote | None = None, **extra: Any) -> dict[str, Any]:
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
    version, catalog, plan_obj = _plan_to_subscribe(session, plan, catalog_version)
    if customer.currency and customer.currency != catalog.currency:
        # What is stored clashes (the customer's currency), not the request's shape.
        raise Conflict("plan", f"plan {plan!r} is priced in {catalog.currency}; customer pays in {customer.currency}")
    if trial_days is not None and not whole_between(trial_days, 0):
        raise SalesError("trial_days", "a whole number of days, 0 or more")
    today = now.date()
    if coupon:
        _check_coupon(session, catalog, coupon, plan, today)
    if id is not None and session.get(Subscription, id) is not None:
        raise Conflict("id", f"subscription {id!r} already exists")
    trial = plan_obj.trial_days if trial_days is None else trial_days
    if plan_obj.interval == "once":
        trial = 0
    lock_counter(session, "invoice", now.year)
    sub = _new_subscription(id, customer, plan_obj, version, q, now, trial, coupon, payment_method)
    session.add(sub)
    session.flush()
    doc: Invoice | CreditNote | None = None
    if plan_obj.interval == "once":
        doc = _one_time(session, sub, customer, catalog, plan_obj, now, promotions)
    elif trial:
        _start_trial(session, sub, now)
    else:
        doc = open_first_period(
            session, sub, customer, catalog, plan_obj, now, "start", StepContext(UsageSource(session), promotions)
        )
    if coupon:  # its credit once the first period is open (a rollover-none grant ends with it)
        grant_coupon_credit(session, customer, sub, catalog, catalog.coupons[coupon], now)
    if trial:  # the trial's subscription.created is out already; nothing was invoiced
        return subscription_result(sub)
    add_event(session, "subscription.created", customer.id, subscription_event(sub), time=now)
    return subscription_result(sub, doc)


def _plan_to_subscribe(
    session: Session, plan: str, catalog_version: int | None
) -> tuple[CatalogVersion, Catalog, Plan]:
    """The catalog version, catalog and plan a new subscription takes: the latest version
    with `plan`, or version number `catalog_version` of that plan's catalog."""
    version, catalog, plan_obj = latest_version_for_plan(session, plan)
    if catalog_version is None:
        return version, catalog, plan_obj
    if isinstance(catalog_version, bool) or not isinstance(catalog_version, int):
        raise SalesError("catalog_version", "a version number")
    version = get_version(session, version.catalog, catalog_version)
    catalog = catalog_for_version(session, version.id)
    if plan not in catalog.plans:
        raise NotFound("plan", f"version {catalog_version} of catalog {version.catalog!r} has no plan {plan!r}")
    return version, catalog, catalog.plan(plan)


def _check_coupon(session: Session, catalog: Catalog, coupon: str, plan: str, today: date) -> None:
    if coupon not in catalog.coupons:
        raise NotFound("coupon", f"unknown coupon {coupon!r}")
    used = coupon_redemption_count(session, catalog.name, coupon)
    try:
        check_redeemable(catalog.coupons[coupon], plan, today, int(used or 0))
    except CouponError as exc:  # expired, another plan's, used up: the stored coupon says no
        raise Conflict("coupon", str(exc)) from None


def _new_subscription(
    id: str | None,
    customer: Customer,
    plan: Plan,
    version: CatalogVersion,
    quantity: Decimal,
    now: datetime,
    trial: int,
    coupon: str | None,
    payment_method: str | None,
) -> Subscription:
    """The row of a new subscription, its first period starting after the `trial` days."""
    today = now.date()
    return Subscription(
        id=id or new_id("sub"),
        customer_id=customer.id,
        plan_id=plan.id,
        catalog=version.catalog,
        catalog_version_id=version.id,
        interval=plan.interval,
        quantity=quantity,
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


def _start_trial(session: Session, sub: Subscription, now: datetime) -> None:
    """A trial starts: nothing billed; the next run is the trial's end notice, sent now
    when the trial is shorter than the notice."""
    end_at = at_midnight(sub.anchor)
    sub.next_run_at = end_at - TRIAL_NOTICE
    add_event(session, "subscription.created", sub.customer_id, subscription_event(sub), time=now)
    if sub.next_run_at <= now:
        sub.trial_notice_sent = True
        sub.next_run_at = end_at
        add_event(session, "subscription.trial_will_end", sub.customer_id, subscription_event(sub), time=now)


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
    sp = SubscriptionPeriod(catalog, plan, sub, customer, period, 0)
    opening = opening_piece(sp, ctx)
    closing = closing_piece(sp, ctx, PeriodHistory())
    sub.status = "completed"
    sub.period_start, sub.period_end = period.start, period.end
    sub.ended_at = now
    sub.next_run_at = None
    sub.last_billed_at = now
    doc, _ = issue_document(
        session,
        sub,
        customer,
        [Priced(opening, "once", 0, sub.catalog_version_id), Priced(closing, "once", 0, sub.catalog_version_id)],
        reason="once",
        billing_key="once",
        now=now,
        period=period,
    )
    return doc


def _rate(plan: Plan, quantity: Decimal) -> Decimal:
    return advance_amount(plan, quantity) / _DAYS.get(plan.interval, 30) / plan.interval_count


def prepare_change(
    session: Session,
    subscription_id: str,
    clock: Clock,
    promotions: PromotionSource | None = None,
    *,
    paused_ok: bool = False,
) -> tuple[Subscription, Customer, datetime]:
    now = now_of(clock)
    lock_counter(session, "invoice", now.year)
    sub = load_subscription(session, subscription_id)
    customer = session.get_one(Customer, sub.customer_id)
    catch_up(session, sub, customer, now, promotions)
    if sub.status in ("canceled", "completed"):
        raise Conflict("subscription_id", f"subscription {sub.id} is {sub.status}")
    if sub.status == "paused" and not paused_ok:  # nothing is billed while paused: resume first
        raise Conflict("subscription_id", f"subscription {sub.id} is paused: resume it first")
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
    sub, customer, now = prepare_change(session, subscription_id, clock, promotions)
    catalog = catalog_for_version(session, sub.catalog_version_id)
    old_plan = catalog.plan(sub.plan_id)
    new_catalog, new_plan, new_version_id = catalog, old_plan, sub.catalog_version_id
    if plan is not None and plan != sub.plan_id:
        new_catalog, new_plan, new_version_id = _plan_to_change_to(session, catalog, plan)
    else:
        plan = None
    target_q = new_q if new_q is not None else sub.quantity
    if plan is None and target_q == sub.quantity:
        raise Conflict("quantity", f"the subscription already has quantity {sub.quantity}")
    at = _when_to_change(sub, at, old_plan, new_plan if plan else None, target_q)
    sub.changes += 1
    change = {
        "plan": {"from": sub.plan_id, "to": new_plan.id} if plan else None,
        "quantity": {"from": number(sub.quantity), "to": number(target_q)} if target_q != sub.quantity else None,
        "at": at,
    }
    if at == "period_end":
        return _change_at_period_end(session, sub, new_plan.id if plan else None, new_version_id, target_q, change, now)
    doc = _charge_change(
        session, sub, customer, now, promotions, (catalog, old_plan), (new_catalog, new_plan, new_version_id), target_q
    )
    _take_terms(sub, new_plan, new_version_id, target_q)
    add_event(session, "subscription.changed", sub.customer_id, subscription_event(sub, changes=change), time=now)
    return subscription_result(sub, doc)


def _charge_change(
    session: Session,
    sub: Subscription,
    customer: Customer,
    now: datetime,
    promotions: PromotionSource | None,
    old: tuple[Catalog, Plan],
    new: tuple[Catalog, Plan, int],
    target_q: Decimal,
) -> Invoice | CreditNote | None:
    """A change that applies now, prorated by days: an invoice, or a credit note when the
    change owes the customer (None while trialing: nothing was charged yet). The subscription
    takes the new terms."""
    if sub.status == "trialing":
        return None
    new_catalog, new_plan, new_version_id = new
    ctx = StepContext(UsageSource(session), promotions)
    priced, bill_period = _change_pieces(session, ctx, sub, customer, old, new, target_q, now.date())
    _take_terms(sub, new_plan, new_version_id, target_q)
    if sub.pending_plan_id == new_plan.id:
        sub.pending_plan_id = None
    doc, _ = issue_document(
        session,
        sub,
        customer,
        priced,
        reason="change",
        billing_key=f"change:{sub.changes}",
        now=now,
        period=bill_period,
        catalog=new_catalog,
    )
    return doc


def _plan_to_change_to(session: Session, catalog: Catalog, plan: str) -> tuple[Catalog, Plan, int]:
    """The catalog, plan and version id of a plan change: the plan's latest version, in the
    subscription's own catalog and not a one-time purchase."""
    version, new_catalog, new_plan = latest_version_for_plan(session, plan)
    # Both depend on what is stored (the subscription's catalog, the plan): a conflict.
    if new_catalog.name != catalog.name:
        raise Conflict("plan", f"plan {plan!r} is in catalog {new_catalog.name!r}, not {catalog.name!r}")
    if new_plan.interval == "once":
        raise Conflict("plan", f"plan {plan!r} is a one-time purchase; buy it with a new subscription")
    return new_catalog, new_plan, version.id


def _when_to_change(sub: Subscription, at: str | None, old_plan: Plan, new_plan: Plan | None, quantity: Decimal) -> str:
    """ "now" or "period_end": as asked, else now for an upgrade (listed in `upgrade_to`, or
    costing as much or more per day) or a quantity change, at the period end for a
    downgrade; always now in a trial (nothing billed yet: it continues on the new terms)."""
    if at is None:
        upgrade = (
            new_plan is None
            or new_plan.id in old_plan.upgrade_to
            or (_rate(new_plan, quantity) >= _rate(old_plan, sub.quantity))
        )
        at = "now" if upgrade else "period_end"
    if sub.status == "trialing":
        at = "now"
    if at == "period_end" and sub.cancel_at_period_end:
        # It would be pending on a subscription that ends then: never applied, yet reported.
        raise Conflict(
            "at",
            f"subscription {sub.id} is cancelled at the period end; a change then would never "
            "apply (reactivate it first, or change it now)",
        )
    return at


def _change_at_period_end(
    session: Session,
    sub: Subscription,
    plan_id: str | None,
    version_id: int,
    quantity: Decimal,
    change: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """A change kept pending until the period ends (the billing run applies it then)."""
    if plan_id is not None:
        sub.pending_plan_id, sub.pending_version_id = plan_id, version_id
    if quantity != sub.quantity:
        sub.pending_quantity = quantity
    effective = sub.period_end or sub.trial_end
    when = iso_or_none(effective)
    add_event(
        session,
        "subscription.changed",
        sub.customer_id,
        subscription_event(sub, changes=change, effective=when),
        time=now,
    )
    return subscription_result(sub, None, effective=when)


def _take_terms(sub: Subscription, plan: Plan, version_id: int, quantity: Decimal) -> None:
    sub.plan_id = plan.id
    sub.catalog_version_id = version_id
    sub.interval = plan.interval
    sub.quantity = quantity


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
    held = SubscriptionPeriod(catalog, old_plan, sub, customer, period, sub.cycle)
    credit = unused_credit(held, ctx, hist, today)
    priced = [Priced(credit, "change", sub.cycle, sub.catalog_version_id)]
    if (new_plan.interval, new_plan.interval_count) == (old_plan.interval, old_plan.interval_count):
        taken = replace(held, catalog=new_catalog, plan=new_plan)
        charge = opening_piece(taken, ctx, charge_from=today, quantity=quantity, before=hist.total())
        return [*priced, Priced(charge, "change", sub.cycle, new_version_id)], period
    if today > period.start:
        closing = closing_piece(held, ctx, hist, until=today)
        priced += with_deduction(hist, Priced(closing, "close", sub.cycle, sub.catalog_version_id))
    sub.anchor = today
    sub.period_index = 0
    new_period = plan_period(new_plan, today, 0)
    sub.period_start, sub.period_end = new_period.start, new_period.end
    sub.next_run_at = new_period.end_at
    sub.cycle += 1
    opening = opening_piece(
        SubscriptionPeriod(new_catalog, new_plan, sub, customer, new_period, sub.cycle), ctx, quantity=quantity
    )
    return [*priced, Priced(opening, "open", sub.cycle, new_version_id)], new_period


def reactivate_subscription(
    session: Session, subscription_id: str, *, clock: Clock, promotions: PromotionSource | None = None
) -> dict[str, Any]:
    """Undo a cancellation at period end, before the period ends."""
    sub, _customer, now = prepare_change(session, subscription_id, clock, promotions)
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
    return subscription_result(sub)


# --- catalog migrations ---------------------------------------------------------------------------


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
