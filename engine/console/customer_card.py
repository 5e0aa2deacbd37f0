"""A customer's card for the console: subscriptions with the next invoice line by line (the
quote the invoices are priced with), invoices with each line's reasons, payments and refunds,
the dunning state with its history, messages with what they said, and every decision in a
plain sentence. Read through sales' public functions and, for payments, dunning and messages,
the `CardReaders` engine/system/console_readers.py binds (this module imports sales alone);
nothing here writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine import rules, sales
from engine.console import explain
from engine.console.rulesets import live_texts
from engine.pricing.quoting import PromotionSource
from engine.sales.search import search_customers

LIVE = ("trialing", "active")
PAUSED = "paused"  # not live (nothing invoiced, the plan grants nothing), but it can resume
__all__ = ["CardReaders", "CustomerCard", "Why", "customer_card", "explain_invoice", "search_customers", "version_lookup"]


@dataclass(frozen=True)
class CardReaders:
    """What the card reads beyond sales."""

    # (session, customer id) -> its dunning state (active when none is recorded).
    dunning_state: Callable[[Session, str], str]
    # (session, customer id, limit) -> its notifications, newest first.
    notifications: Callable[[Session, str, int], list[dict[str, Any]]]
    # (session, notification id) -> the rendered message; None: not rendered.
    notification_content: Callable[[Session, str], dict[str, Any] | None]
    # (session, invoice id) -> what payments knows of the invoice, its payments included; None: nothing.
    payment_summary: Callable[[Session, str], dict[str, Any] | None]
    # (session, invoice id) -> the refunds of the invoice's payments, oldest first.
    refunds: Callable[[Session, str], list[dict[str, Any]]]


@dataclass(frozen=True)
class PreviewLine:
    name: str
    quantity: Decimal
    amount: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal


@dataclass(frozen=True)
class SubscriptionCard:
    id: str
    plan: str
    plan_name: str
    catalog: str
    status: str
    quantity: str
    started: str
    period: tuple[str, str] | None
    coupon: str | None
    cancel_at_period_end: bool
    currency: str = ""
    preview: list[PreviewLine] = field(default_factory=list)
    preview_total: Decimal | None = None
    preview_note: str = ""
    plans: dict[str, str] = field(default_factory=dict)  # the catalog's plans, id -> name
    coupons: list[str] = field(default_factory=list)  # the catalog's coupon codes
    pause_at_period_end: bool = False
    paused_at: str | None = None  # when the pause took effect


@dataclass(frozen=True)
class Why:
    time: str
    kind: str  # access | charge | dunning | message
    subject: str
    sentence: str


@dataclass(frozen=True)
class CustomerCard:
    customer: dict[str, Any]
    subscriptions: list[SubscriptionCard]
    invoices: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    dunning_state: str
    dunning_history: list[Why]
    messages: list[dict[str, Any]]
    decisions: list[Why]


def customer_card(session: Session, read: CardReaders, customer_id: str, *,
                  promotions: PromotionSource | None = None, limit: int = 100) -> CustomerCard:
    """Everything the Customers page shows of one customer (NotFound naming customer_id)."""
    customer = sales.get_customer(session, customer_id)
    invoices = sales.list_invoices(session, customer_id, per_page=100)["items"]
    paid, refunds = _payments(session, read, invoices)
    versions = version_lookup(session)
    state = read.dunning_state(session, customer_id)
    numbers = {i["id"]: i.get("number") or "draft" for i in invoices}
    decisions = [_why(session, d, versions, state, numbers)
                 for d in rules.customer_decisions(session, customer_id, limit=limit)]
    messages = read.notifications(session, customer_id, limit)
    return CustomerCard(
        customer=customer,
        subscriptions=[_subscription(session, s, promotions) for s in sales.list_subscriptions(session, customer_id)],
        invoices=invoices, payments=paid, refunds=refunds, dunning_state=state,
        dunning_history=[w for w in decisions if w.kind == "dunning"],
        messages=messages, decisions=decisions,
    )


def message_content(session: Session, read: CardReaders, notification_id: str) -> dict[str, Any] | None:
    return read.notification_content(session, notification_id)


def _subscription(session: Session, s: dict[str, Any], promotions: PromotionSource | None) -> SubscriptionCard:
    period = (s["current_period"]["start"], s["current_period"]["end"]) if s.get("current_period") else None
    base = SubscriptionCard(s["id"], s["plan"], s["plan"], s["catalog"], s["status"], s["quantity"],
                            s["start_date"], period, s.get("coupon"), bool(s.get("cancel_at_period_end")),
                            pause_at_period_end=bool(s.get("pause_at_period_end")), paused_at=s.get("paused_at"))
    if s["status"] not in LIVE:
        return base
    try:
        doc = sales.quote_subscription(session, s["id"], promotions=promotions).document
    except sales.SalesError as exc:  # e.g. a period the billing run has not opened yet
        return _replace(base, preview_note=f"No preview: {exc}")
    plan = doc.catalog.plans.get(s["plan"])
    lines = [PreviewLine(x.name, x.quantity, x.amount, x.discount, x.tax, x.total) for x in doc.lines]
    return _replace(base, plan_name=plan.name if plan else s["plan"], currency=doc.currency, preview=lines,
                    preview_total=doc.total, plans={p.id: p.name for p in doc.catalog.plans.values()},
                    coupons=sorted(doc.catalog.coupons))


def _replace(card: SubscriptionCard, **changes: Any) -> SubscriptionCard:
    return replace(card, **changes)


def _payments(session: Session, read: CardReaders,
              invoices: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    paid, refunds = [], []
    for inv in invoices:
        summary = read.payment_summary(session, inv["id"])
        for p in (summary or {}).get("payments", []):
            paid.append({**p, "invoice": inv.get("number") or "draft"})
        for r in read.refunds(session, inv["id"]):
            refunds.append({**r, "invoice": inv.get("number") or "draft"})
    return paid, refunds


def explain_invoice(session: Session, invoice_id: str) -> tuple[dict[str, Any], list[list[str]]]:
    """The invoice (as GET /v1/invoices/{id}) and, per line, why it has its amount."""
    invoice = sales.get_invoice(session, invoice_id)
    versions = version_lookup(session)
    return invoice, [explain.line_reasons(invoice, line, versions) for line in invoice["lines"]]


def version_lookup(session: Session) -> explain.VersionAt:
    """The version of a ruleset in force at a time (the last published by then)."""
    cache: dict[str, list[tuple[datetime, int]]] = {}

    def at(ruleset: str, when: datetime | None) -> int | None:
        if ruleset not in cache:
            cache[ruleset] = [(v.published_at, v.version) for v in rules.ruleset_history(session, ruleset)]
        live = [v for t, v in cache[ruleset] if when is None or t <= when]
        return live[-1] if live else None

    return at


def _why(session: Session, item: dict[str, Any], versions: explain.VersionAt, state: str,
         numbers: dict[str, str]) -> Why:
    kind, subject = item["kind"], item.get("subject") or ""
    if kind == "charge":  # the subject is the invoice: its number, never its id
        subject = numbers.get(subject, subject)
        return Why(item["time"], kind, subject, explain.charge_reason(item, subject))
    if kind == "access":
        record = rules.decision_by_id(session, item["id"])
        inputs = record.inputs if record is not None else {}
        dunned = None if state == "active" else state
        sentence = (explain.denial_reason(subject, inputs or {}, item.get("rule"), dunned, str(item.get("reason") or ""))
                    if item["outcome"] == "deny" else f"Access to {subject} was allowed ({item.get('reason')}).")
    elif kind == "message":
        exact = _exact_version(session, item)
        sentence = explain.message_reason(item, exact or versions)
    else:
        sentence = explain.dunning_reason(item)
    return Why(item["time"], kind, subject, sentence)


def _exact_version(session: Session, item: dict[str, Any]) -> explain.VersionAt | None:
    """The versions the decision itself recorded (the log keeps {ruleset: version})."""
    record = rules.decision_by_id(session, str(item["id"]).partition(":")[0])
    if record is None or not record.rulesets:
        return None
    recorded = dict(record.rulesets)
    return lambda ruleset, _when: recorded.get(ruleset)


def live_promotions(session: Session) -> PromotionSource | None:
    """The pricing rules in force as a promotion source (what invoices are priced with), or
    None when no pricing rule is published."""
    texts, where = live_texts(session)
    if where != "published":  # the example files price nothing live
        return None
    runtime = rules.pricing_runtime(texts)
    return rules.RulePromotions(runtime) if runtime is not None else None
