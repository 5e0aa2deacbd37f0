"""What an invoice and a credit note show: the properties of the invoice events, and the dicts the
API and the operations return. Moved from engine/sales/invoicing.py."""

from __future__ import annotations

from typing import Any

from engine.periods import iso_or_none
from engine.sales.common import money, number
from engine.sales.models import CreditNote, Invoice


def invoice_event_properties(inv: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": inv.id,
        "number": inv.number,
        "customer_id": inv.customer_id,
        "subscription_id": inv.subscription_id,
        "status": inv.status,
        "reason": inv.reason,
        "currency": inv.currency,
        "subtotal": money(inv.subtotal, inv.currency),
        "discount": money(inv.discount, inv.currency),
        "tax": money(inv.tax, inv.currency),
        "total": money(inv.total, inv.currency),
        "credit_applied": money(inv.credit_applied, inv.currency),
        "amount_due": money(inv.amount_due, inv.currency),
        "period_start": iso_or_none(inv.period_start),
        "period_end": iso_or_none(inv.period_end),
        "plan": inv.plan_id,
        "issued_at": iso_or_none(inv.issued_at),
    }


def invoice_summary(inv: Invoice) -> dict[str, Any]:
    return {
        "id": inv.id,
        "number": inv.number,
        "customer_id": inv.customer_id,
        "subscription_id": inv.subscription_id,
        "status": inv.status,
        "reason": inv.reason,
        "currency": inv.currency,
        "plan": inv.plan_id,
        "period": {"start": iso_or_none(inv.period_start), "end": iso_or_none(inv.period_end)},
        "subtotal": money(inv.subtotal, inv.currency),
        "discount": money(inv.discount, inv.currency),
        "discounts": list(inv.discounts or []),
        "tax": money(inv.tax, inv.currency),
        "tax_rate": number(inv.tax_rate),
        "tax_country": inv.tax_country,
        "reverse_charge": inv.reverse_charge,
        "total": money(inv.total, inv.currency),
        "credit_applied": money(inv.credit_applied, inv.currency),
        # Credit notes taken off it (a cancellation's unused time): amount_due is what is left.
        "amount_credited": money(inv.total - inv.credit_applied - inv.amount_due, inv.currency),
        "amount_due": money(inv.amount_due, inv.currency),
        "amount_paid": money(inv.amount_paid, inv.currency),
        "issued_at": iso_or_none(inv.issued_at),
        "paid_at": iso_or_none(inv.paid_at),
    }


def credit_note_to_dict(note: CreditNote) -> dict[str, Any]:
    return {
        "id": note.id,
        "number": note.number,
        "customer_id": note.customer_id,
        "subscription_id": note.subscription_id,
        "invoice_id": note.invoice_id,
        "reason": note.reason,
        "currency": note.currency,
        "subtotal": money(note.subtotal, note.currency),
        "tax": money(note.tax, note.currency),
        "total": money(note.total, note.currency),
        # To the customer's balance; null on a note older than this field.
        "to_balance": None if note.to_balance is None else money(note.to_balance, note.currency),
        "lines": list(note.lines or []),
        "created_at": note.created_at.isoformat(),
    }
