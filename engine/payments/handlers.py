"""Event handlers of payments: plain functions `(session, envelope)` for the bus to register.

Each marks the event processed (consumer "payments") in the transaction of its effects, so a
redelivered event has no second effect. A handler that raises leaves nothing behind and the
event is delivered again; the provider-side idempotency key then makes the retry safe.

invoice.finalized properties read (sales publishes them):
    invoice_id        required
    amount_due        required, decimal string (what remains to collect; `total` is accepted)
    currency          required, ISO 4217
    attempt           optional, default 1
    payment_reference optional: an ISO 11649 reference sales already printed on the invoice
    collection_method optional: automatic (default) | bank_transfer (wait for the statement)
    due_at            optional ISO time; later than now: opened, collected by collect_due_invoices
    lines             optional [{plan, price_type?, amount, tax?, period_start?, period_end?, ...}]
                      net amounts, for the journal (revenue per plan and price type) and the
                      revenue-recognition schedule (engine/payments/books)
    tax               optional decimal string, for the journal
    tax_country       optional ISO country: tax is payable there (tax_payable:<country>)
    credit_applied    optional decimal string: the customer's credit sales spent on it
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import ensure_aware
from engine.money import to_decimal
from engine.payments.bank import bank_references, remember_invoice
from engine.payments.books.credits import wallet_entries
from engine.payments.books.schedules import PendingSchedules, schedule_invoice
from engine.payments.collection import collect_invoice, retry_invoice_payment
from engine.payments.method_store import add_payment_method
from engine.payments.models import PaymentMethod
from engine.payments.reads import BatchReads
from engine.payments.receivables import open_receivable
from engine.payments.references import invoice_reference, normalise_reference
from engine.payments.service import CollectableInvoice, PaymentError, PaymentService
from engine.store import mark_processed, mark_processed_many

CONSUMER = "payments.handlers"  # distinct from the bus's own record under "payments"


def _props(envelope: dict[str, Any]) -> dict[str, Any]:
    props = envelope.get("properties") or {}
    if not isinstance(props, dict):
        raise PaymentError(f"event {envelope.get('id')}: properties must be an object")
    return props


def invoice_from_event(envelope: dict[str, Any]) -> CollectableInvoice:
    props = _props(envelope)
    try:
        invoice_id = str(props["invoice_id"])
        amount = to_decimal(props.get("amount_due", props.get("total")), "amount_due")
        currency = str(props["currency"])
    except (KeyError, ValueError) as exc:
        raise PaymentError(f"event {envelope.get('id')}: invoice.finalized needs invoice_id, "
                           f"amount_due and currency ({exc})") from None
    customer_id = props.get("customer_id") or envelope.get("customer_id")
    if not customer_id:
        raise PaymentError(f"event {envelope.get('id')}: no customer_id")
    return CollectableInvoice(
        invoice_id=invoice_id,
        customer_id=str(customer_id),
        amount_due=amount,
        currency=currency,
        attempt=int(props.get("attempt", 1)),
        payment_reference=props.get("payment_reference"),
    )


def handle_invoice_finalized(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """Open the receivable and, when it is due now and collected automatically, charge the
    customer's default method (customer credit first). A batch of one."""
    handle_invoices_finalized(session, [envelope], service=service)


def handle_invoices_finalized(session: Session, envelopes: Sequence[dict[str, Any]], *,
                              service: PaymentService) -> None:
    """`handle_invoice_finalized` for a bus batch, in its order: what the invoices read
    (receivables, references, attempts, credit balances, default methods) read ahead in a
    few queries (engine/payments/reads.py), the events marked processed in one statement, and
    what they add written together at the batch's end (one flush, the schedules in one go)."""
    fresh = mark_processed_many(session, CONSUMER, [e["id"] for e in envelopes], service.now())
    todo = []
    for envelope in envelopes:
        if envelope["id"] in fresh:
            fresh.discard(envelope["id"])  # the same id twice: the second is a duplicate
            todo.append((envelope, invoice_from_event(envelope), _props(envelope)))
    if not todo:
        return
    reads = BatchReads(
        session, [invoice for _, invoice, _ in todo],
        references=[normalise_reference(invoice.payment_reference or invoice_reference(invoice.invoice_id))
                    for _, invoice, _ in todo],
        bank=[ref for _, _, props in todo for ref in bank_references(props.get("number"))],
        sources=[f"inv:{invoice.invoice_id}" for _, invoice, _ in todo],
    )
    schedules = PendingSchedules()
    for _, invoice, props in todo:
        _finalized(session, invoice, props, service, reads, schedules)
        reads.forget(invoice.invoice_id, invoice.customer_id)
    schedules.write(session)


def _finalized(session: Session, invoice: CollectableInvoice, props: dict[str, Any], svc: PaymentService,
               reads: BatchReads, schedules: PendingSchedules) -> None:
    now = svc.now()
    revenue, discounts = _revenue(props)
    tax = to_decimal(props.get("tax") or "0", "tax")
    credit_applied = to_decimal(props.get("credit_applied") or "0", "credit_applied")
    due_at = ensure_aware(datetime.fromisoformat(str(props["due_at"]).replace("Z", "+00:00")), "due_at") \
        if props.get("due_at") else None
    method = str(props.get("collection_method") or "automatic")
    open_receivable(session, invoice, revenue_by_plan=revenue, tax=tax, collection_method=method,
                    due_at=due_at, tax_country=props.get("tax_country"), credit_applied=credit_applied,
                    discount=discounts, service=svc, reads=reads)
    # The schedule first: a pack sold defers its invoice's rows in the report (wallet_entries).
    schedule_invoice(session, invoice, props, service=svc, reads=reads, pending=schedules)
    if props.get("reason") == "charge" or credit_applied > 0:  # a pack sold, wallet credit spent
        schedules.write(session)  # a pack's entries read its invoice's rows
        wallet_entries(session, invoice, revenue, discounts, svc.now())
    remember_invoice(session, invoice.invoice_id, props.get("number"), reads)  # for bank transfers
    _adopt_method(session, invoice.customer_id, props.get("payment_method"), svc, reads)
    if due_at is None or due_at <= now:
        collect_invoice(session, invoice, service=svc, collection_method=method, reads=reads)


def _revenue(props: dict[str, Any]) -> tuple[dict[str, Decimal], Decimal]:
    """Gross revenue per "plan:price_type" and the discounts, from the event's lines: revenue is
    booked gross and the discount apart (the chart's discounts account)."""
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    discounts = Decimal(0)
    for line in props.get("lines") or []:
        if isinstance(line, dict) and "amount" in line:
            key = str(line.get("plan") or "unassigned")
            if line.get("price_type"):
                key += f":{line['price_type']}"
            discount = to_decimal(line.get("discount") or "0", "lines.discount")
            revenue[key] += to_decimal(line["amount"], "lines.amount") + discount
            discounts += discount
    return revenue, discounts


def _adopt_method(session: Session, customer_id: str, given: Any, svc: PaymentService, reads: BatchReads) -> None:
    """The invoice names the subscription's method (a card token given to sales) and the
    customer has none stored yet: store it before collecting. sales publishes the first
    invoice before subscription.created, so waiting for that event would fail the first
    attempt with no_payment_method. A stored method's id ("pm_...") is already here."""
    if not isinstance(given, str) or not given or given.startswith("pm_"):
        return
    if reads.default_method(session, customer_id) is not None:
        return
    add_payment_method(session, customer_id, "card", given, provider=svc.default_provider, service=svc)
    reads.method_added(customer_id)


def handle_payment_retry(session: Session, envelope: dict[str, Any], *, service: PaymentService) -> None:
    """The next collection attempt for `properties.invoice_id` (what the dunning rules'
    `retry_payment` action asks for, once its delay has passed)."""
    svc = service
    if not mark_processed(session, CONSUMER, envelope["id"], svc.now()):
        return
    invoice_id = _props(envelope).get("invoice_id")
    if not invoice_id:
        raise PaymentError(f"event {envelope.get('id')}: no invoice_id to retry")
    retry_invoice_payment(session, str(invoice_id), service=svc)


def handle_payment_method_attached(session: Session, envelope: dict[str, Any], *,
                                   service: PaymentService) -> None:
    """Store a customer's payment method from an event whose properties carry
    `payment_method: {type, token, provider?}` (e.g. subscription.created with one)."""
    svc = service
    if not mark_processed(session, CONSUMER, envelope["id"], svc.now()):
        return
    method = _props(envelope).get("payment_method")
    if not method or not envelope.get("customer_id"):
        return
    if isinstance(method, str) and method.startswith("pm_"):
        return  # a method stored already (attached over HTTP before the subscription)
    if isinstance(method, str):
        method = {"type": "card", "token": method}
    if _stored(session, str(envelope["customer_id"]), method.get("token")):
        return  # the first invoice already brought it in
    add_payment_method(session, str(envelope["customer_id"]), str(method.get("type", "card")),
                       method.get("token"), provider=str(method.get("provider", svc.default_provider)),
                       service=svc)


def _stored(session: Session, customer_id: str, token: Any) -> bool:
    return token is not None and session.scalar(
        select(PaymentMethod.id).where(PaymentMethod.customer_id == customer_id, PaymentMethod.token == str(token))
    ) is not None
