"""The quote of a subscription's period: what the engine invoices for it, priced at once.

A period that documents have billed is replayed from its ledger: each in-advance piece as it
was billed (its plan and catalog version, quantity, days, discounts; a change's credit for
the unused days and its charge for the rest), then the period's usage and minimum as its close
prices them (or, while the period is open, as it would close now), all by the one pricing
function, `engine.pricing.price_document`. So the documents of a period, changes, credits and
late usage included, add up to this quote cent for cent. A period nothing has billed yet (a
trial) is quoted from the subscription as it stands (`engine.pricing.whole_period`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy.orm import Session

from engine.money import ZERO
from engine.periods import Period
from engine.pricing import Document, tax_for, whole_period
from engine.pricing.document import ADVANCE, NOTHING, Billed, Piece, price_document
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.customers import tax_subject
from engine.sales.due import plan_period
from engine.sales.errors import SalesError
from engine.sales.ledger import INTERIM, PeriodHistory, discount_from_dict, history
from engine.sales.models import Customer, PeriodLedger, Subscription
from engine.sales.pieces import StepContext, closed_piece, closing_piece
from engine.sales.progressive_void import voided_documents
from engine.sales.subscriptions import load_subscription
from engine.sales.terms import SubscriptionPeriod, period_terms
from engine.sales.usage_source import UsageSource, usage_for


@dataclass(frozen=True)
class SubscriptionQuote:
    subscription_id: str
    document: Document
    mid_period_changes: int  # changes and cancellations within the period (prorated documents)
    # What progressive invoices billed of the period before its end (tax included), and which;
    # the period's close deducts it, so the quote's total is still what the period costs.
    progressively_invoiced: Decimal = ZERO
    progressive_invoices: tuple[str, ...] = ()


def quote_subscription(
    session: Session,
    subscription_id: str,
    *,
    period: Period | None = None,
    promotions: PromotionSource | None = None,
) -> SubscriptionQuote:
    """The quote of the subscription's current period (or of `period`, one of its periods)."""
    sub = load_subscription(session, subscription_id, lock=False)
    customer = session.get_one(Customer, sub.customer_id)
    period = period or _current(session, sub)
    hist = history(session, sub.id, period.start)
    if not hist.rows:  # nothing billed for it yet: the current period alone
        if (sub.period_start, sub.period_end) != (period.start, period.end):
            raise SalesError("period", f"subscription {sub.id} has no period {period}")
    elif (end := hist.rows[-1].period_end) != period.end:
        raise SalesError("period", f"the subscription's period starting {period.start} ends {end}")
    if hist.held():
        doc = _replayed(session, sub, customer, period, hist, promotions)
    else:
        doc = _unbilled(session, sub, customer, period, promotions)
    voided = voided_documents(hist.rows)  # a voided progressive invoice invoiced nothing early
    early = [r for r in hist.rows if r.part == INTERIM and r.reason == "progressive" and r.document_id not in voided]
    invoiced = sum(
        (t.amount - t.discount + t.tax for r in early for t in Billed.from_dict(r.billed).lines.values()), ZERO
    )
    return SubscriptionQuote(sub.id, doc, hist.changes, invoiced, tuple(dict.fromkeys(r.document_id for r in early)))


def _replayed(
    session: Session,
    sub: Subscription,
    customer: Customer,
    period: Period,
    hist: PeriodHistory,
    promotions: PromotionSource | None,
) -> Document:
    """The period's billed in-advance pieces as they were billed, then its usage and minimum:
    as its close priced them (with every event now known, as late usage bills them), or, for
    a period still open, as closing it now would."""
    pieces = [_as_billed(session, r, period) for r in hist.rows if r.part == "advance"]
    closing = closed_piece(session, hist, period, sub.customer_id)
    if closing is None:
        last = hist.held()[-1]
        catalog = catalog_for_version(session, last.version_id)
        ctx = StepContext(UsageSource(session), promotions)
        held = SubscriptionPeriod(catalog, catalog.plan(last.plan_id), sub, customer, period, last.cycle)
        closing = closing_piece(held, ctx, hist, redeem=False)
        # Priced on one document with the pieces above: it sees them as what came before.
        closing = replace(closing, before=NOTHING)
    return price_document(
        [*pieces, closing],
        tax_for(closing.catalog, tax_subject(customer)),
        catalog=closing.catalog,
        plan=closing.plan.id,
        period=period,
        rules=_trace(session, sub, customer, period, hist, closing, promotions),
    )


def _as_billed(session: Session, row: PeriodLedger, period: Period) -> Piece:
    """A ledger row's in-advance piece, with the inputs it was billed with."""
    catalog = catalog_for_version(session, row.version_id)
    return Piece(
        catalog,
        catalog.plan(row.plan_id),
        period,
        ADVANCE,
        row.quantity,
        charge_from=row.charge_from,
        charge_until=row.charge_until,
        discounts=tuple(discount_from_dict(d) for d in row.discounts),
        credit=row.credit,
    )


def _trace(
    session: Session,
    sub: Subscription,
    customer: Customer,
    period: Period,
    hist: PeriodHistory,
    closing: Piece,
    promotions: PromotionSource | None,
) -> tuple[dict[str, object], ...]:
    """Which pricing rules hold for the plans of the period (as each was taken, and at the
    close with its usage): the quote's `rules`."""
    out: list[dict[str, object]] = []
    held = hist.held()
    for r in held:
        catalog = catalog_for_version(session, r.version_id)
        taken = SubscriptionPeriod(catalog, catalog.plan(r.plan_id), sub, customer, period, r.cycle)
        terms = period_terms(taken, promotions=promotions, redeem=False, quantity=r.quantity)
        out += [t for t in terms.rules if t not in out]
    at_close = SubscriptionPeriod(closing.catalog, closing.plan, sub, customer, period, held[-1].cycle)
    terms = period_terms(at_close, usage=closing.usage, promotions=promotions, redeem=False, quantity=closing.quantity)
    out += [t for t in terms.rules if t not in out]
    return tuple(out)


def _unbilled(
    session: Session, sub: Subscription, customer: Customer, period: Period, promotions: PromotionSource | None
) -> Document:
    """A period nothing has billed yet: priced from the subscription as it stands."""
    catalog = catalog_for_version(session, sub.catalog_version_id)
    plan = catalog.plan(sub.plan_id)
    usage = usage_for(UsageSource(session), catalog, plan, sub.customer_id, period)
    sp = SubscriptionPeriod(catalog, plan, sub, customer, period, sub.cycle)
    opening = period_terms(sp, promotions=promotions, redeem=False)
    closing = period_terms(sp, usage=usage, promotions=promotions, redeem=False)
    return whole_period(
        catalog,
        plan,
        period,
        quantity=sub.quantity,
        usage=usage,
        advance_discounts=opening.discounts,
        arrears_discounts=closing.discounts,
        tax=tax_for(catalog, tax_subject(customer)),
        rules=opening.rules + tuple(r for r in closing.rules if r not in opening.rules),
    )


def _current(session: Session, sub: Subscription) -> Period:
    if sub.period_start is not None and sub.period_end is not None:
        return Period(sub.period_start, sub.period_end)
    catalog = catalog_for_version(session, sub.catalog_version_id)
    return plan_period(catalog.plan(sub.plan_id), sub.anchor, 0)
