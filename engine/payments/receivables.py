"""What invoices owe and what customers hold: receivables (journalled when opened) and
customer credit (overpayments kept, applied to the next invoice).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.money import KNOWN_CURRENCIES
from engine.payments import journal
from engine.payments.journal import Posting
from engine.payments.models import CreditBalance, CreditEntry, Receivable
from engine.payments.postings import debit_posting
from engine.payments.reads import ONE_BY_ONE, Reads
from engine.payments.references import invoice_reference, normalise_reference
from engine.payments.service import ZERO, CollectableInvoice, PaymentError, PaymentService, check_amount
from engine.store import new_event_id

# --- receivables -----------------------------------------------------------------------------


def open_receivable(
    session: Session,
    invoice: CollectableInvoice,
    *,
    revenue_by_plan: Mapping[str, Decimal] | None = None,
    tax: Decimal = ZERO,
    collection_method: str = "automatic",
    due_at: datetime | None = None,
    tax_country: str | None = None,
    credit_applied: Decimal = ZERO,
    discount: Decimal = ZERO,
    service: PaymentService,
    reads: Reads = ONE_BY_ONE,
) -> Receivable:
    """Record what an invoice owes (idempotent per invoice id) and journal it:
    Dr receivables, Dr customer credit (what sales applied of the customer's balance) /
    Dr discounts / Cr revenue per plan (and price type, "pro:usage"), gross of `discount` /
    Cr tax payable (per country). `reads`: what a batch read ahead (engine/payments/reads.py)."""
    svc = service
    existing = reads.receivable(session, invoice.invoice_id)
    if existing is not None:
        return existing
    amount = _amount_due(invoice)
    if collection_method not in ("automatic", "bank_transfer"):
        raise PaymentError(f"collection_method must be automatic or bank_transfer, not {collection_method!r}")
    reference = _free_reference(session, invoice, reads)
    now = svc.now()
    rec = Receivable(
        invoice_id=invoice.invoice_id,
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        amount_due=amount,
        amount_paid=ZERO,
        credit_applied=ZERO,
        payment_reference=normalise_reference(reference),
        collection_method=collection_method,
        status="open" if amount > 0 else "paid",
        due_at=due_at,
        last_attempt=0,
        created_at=now,
    )
    postings = _issue_postings(amount, Decimal(credit_applied), revenue_by_plan or {}, Decimal(discount),
                               Decimal(tax), tax_country)
    try:
        with reads.opening(session):
            session.add(rec)
            journal.post_entry(
                session, f"inv:{invoice.invoice_id}", now, invoice.currency, postings,
                f"invoice {invoice.invoice_id} issued", invoice.invoice_id,
            )
        reads.opened(rec)
    except IntegrityError:
        # Another collection of this invoice (another process) opened it meanwhile and has
        # committed: its receivable is the one, and its attempt is what this one returns.
        theirs = session.get(Receivable, invoice.invoice_id, with_for_update=True, populate_existing=True)
        if theirs is None:
            raise
        return theirs
    return rec


def _amount_due(invoice: CollectableInvoice) -> Decimal:
    """The invoice's amount due: a non-negative Decimal in a known currency."""
    amount = Decimal(invoice.amount_due)
    if isinstance(invoice.amount_due, float) or amount < 0:
        raise PaymentError(f"invoice {invoice.invoice_id}: amount_due must be a non-negative Decimal")
    if amount:
        check_amount(amount, invoice.currency, "amount_due")
    elif invoice.currency not in KNOWN_CURRENCIES:
        raise PaymentError(f"currency {invoice.currency!r} is not a known ISO 4217 code")
    return amount


def _free_reference(session: Session, invoice: CollectableInvoice, reads: Reads) -> str:
    """The invoice's payment reference, or one built from its id when another invoice has
    that reference already."""
    reference = invoice.payment_reference or invoice_reference(invoice.invoice_id)
    if reads.reference_taken(session, normalise_reference(reference)):
        reference = invoice_reference(invoice.invoice_id, digest=True)
    return reference


def _issue_postings(amount: Decimal, credit_applied: Decimal, revenue_by_plan: Mapping[str, Decimal],
                    discount: Decimal, tax: Decimal, tax_country: str | None) -> list[Posting]:
    """The invoice's entry, exactly as the invoice says it (its tax is the sum of its lines'
    rounded taxes, never recomputed here): Dr receivables, Dr customer credit, Dr discounts /
    Cr revenue per plan, Cr tax payable."""
    postings = [Posting(journal.RECEIVABLES, debit=amount), Posting(journal.CUSTOMER_CREDIT, debit=credit_applied)]
    revenue = {plan: Decimal(v) for plan, v in revenue_by_plan.items()}
    postings.append(debit_posting("discounts", discount))
    # A net negative plan line (a proration credit larger than its charge) reverses revenue.
    postings += [debit_posting(journal.revenue_account(plan), -v) for plan, v in revenue.items() if v]
    tax_account = f"{journal.TAX_PAYABLE}:{tax_country}" if tax_country else journal.TAX_PAYABLE
    postings.append(debit_posting(tax_account, -tax))
    # Whatever the breakdown does not explain (no breakdown given, or rounding) is visible.
    rest = amount + credit_applied + discount - sum(revenue.values(), ZERO) - tax
    if rest > 0:
        postings.append(Posting(journal.revenue_account(None), credit=rest))
    elif rest < 0:
        postings.append(Posting("discounts", debit=-rest))
    return postings


def _apply_credit(session: Session, svc: PaymentService, rec: Receivable, reads: Reads = ONE_BY_ONE) -> Decimal:
    balance = reads.credit_balance(session, rec.customer_id, rec.currency)
    if balance is None or balance.balance <= 0 or rec.remaining <= 0:
        return ZERO
    use = min(balance.balance, rec.remaining)
    balance.balance -= use
    rec.credit_applied += use
    now = svc.now()
    session.add(
        CreditEntry(
            customer_id=rec.customer_id, currency=rec.currency, amount=-use, reason="applied",
            invoice_id=rec.invoice_id, created_at=now,
        )
    )
    journal.post_entry(
        session, f"credit:{rec.invoice_id}:{new_event_id('c')}", now, rec.currency,
        [Posting(journal.CUSTOMER_CREDIT, debit=use), Posting(journal.RECEIVABLES, credit=use)],
        f"customer credit applied to {rec.invoice_id}", rec.invoice_id,
    )
    if rec.remaining == 0:
        rec.status = "paid"
    return use


def add_credit(session: Session, customer_id: str, currency: str, amount: Decimal, now: datetime,
                payment_id: str | None, invoice_id: str | None, *, reason: str = "overpayment") -> None:
    balance = session.get(CreditBalance, (customer_id, currency), with_for_update=True)
    if balance is None:
        session.add(CreditBalance(customer_id=customer_id, currency=currency, balance=amount))
    else:
        balance.balance += amount
    session.add(
        CreditEntry(
            customer_id=customer_id, currency=currency, amount=amount, reason=reason,
            payment_id=payment_id, invoice_id=invoice_id, created_at=now,
        )
    )


def return_credit(session: Session, rec: Receivable, amount: Decimal, now: datetime) -> None:
    """A voided invoice's customer credit (what `_apply_credit` took of an overpayment) back on
    the customer's balance, for the next invoice; the void's entry credits `customer_credit`."""
    add_credit(session, rec.customer_id, rec.currency, amount, now, None, rec.invoice_id, reason="returned")


def customer_credit_balance(session: Session, customer_id: str, currency: str, *, lock: bool = False) -> Decimal:
    """The customer's credit (overpayments kept); `lock`: held until the transaction ends, so a
    refund paying it back and an invoice applying it cannot both spend it."""
    row = session.get(CreditBalance, (customer_id, currency), with_for_update=lock)
    return row.balance if row is not None else ZERO
