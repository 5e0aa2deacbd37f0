"""The pieces of a period's document: a period's in-advance charges (from a day: prorated),
the credit for the unused rest of a paid period, a period's in-arrears usage and minimum
against what it was charged, the deduction of progressive invoices, and a closed period
priced again. Each prices one `SubscriptionPeriod` (catalog, plan, subscription, customer,
period, cycle); `StepContext` is what they read besides. Moved from engine.sales.cycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from engine.catalog.model import Plan
from engine.periods import Period
from engine.pricing import Discount, MetricUsage, deduction
from engine.pricing.charges import charge
from engine.pricing.document import ADVANCE, ARREARS, NOTHING, Billed, Piece, held_minimum
from engine.pricing.quoting import PromotionSource
from engine.sales.catalog_versions import catalog_for_version
from engine.sales.ledger import INTERIM, PeriodHistory, history
from engine.sales.terms import SubscriptionPeriod, Terms, period_terms
from engine.sales.usage_source import UsageSource, usage_for

ZERO = Decimal(0)


def advance_amount(plan: Plan, quantity: Decimal) -> Decimal:
    return sum((charge(p, quantity).amount for p in plan.prices if p.timing == "in_advance"), ZERO)


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
    sp: SubscriptionPeriod,
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
        else period_terms(sp, promotions=ctx.promotions, quantity=quantity)
    )
    return Piece(
        sp.catalog,
        sp.plan,
        sp.period,
        ADVANCE,
        sp.sub.quantity if quantity is None else quantity,
        charge_from=charge_from,
        discounts=terms.discounts,
        credit=credit,
        before=before,
        rules=terms.rules,
    )


def unused_credit(sp: SubscriptionPeriod, ctx: StepContext, hist: PeriodHistory, today: date) -> Piece:
    """The credit for the rest of a paid period from `today` (a cancellation or a plan change):
    its in-advance prices negated, with the discounts they were billed with."""
    return opening_piece(
        sp, ctx, charge_from=today, credit=True, before=hist.total(), discounts=hist.discounts("advance", sp.plan.id)
    )


def closing_piece(
    sp: SubscriptionPeriod,
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
        usage = usage_for(ctx.src, sp.catalog, sp.plan, sp.sub.customer_id, sp.period, until)
    terms = period_terms(sp, usage=usage, promotions=ctx.promotions, redeem=redeem)
    taken, held = held_terms(ctx.src.session, hist, sp.period)
    return Piece(
        sp.catalog,
        sp.plan,
        sp.period,
        ARREARS,
        sp.sub.quantity,
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
