"""What an invoice and a credit note show: the properties of the invoice events, and the dicts the
API and the operations return. Moved from engine/sales/invoicing.py."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.periods import iso_or_none
from engine.sales.common import money, number
from engine.sales.models import CreditNote, Invoice

_Field = Callable[[Invoice], object]


def _money(amount: Callable[[Invoice], Decimal]) -> _Field:
    return lambda inv: money(amount(inv), inv.currency)


# Every field an invoice shows, each declared once; a view is the keys it shows, in its order
# (the order of the event's and the API's JSON: tests/webhooks/test_http.py pins both); a
# view reads only the fields it shows.
_FIELDS: dict[str, _Field] = {
    "id": lambda inv: inv.id,
    "invoice_id": lambda inv: inv.id,
    "number": lambda inv: inv.number,
    "customer_id": lambda inv: inv.customer_id,
    "subscription_id": lambda inv: inv.subscription_id,
    "status": lambda inv: inv.status,
    "reason": lambda inv: inv.reason,
    "currency": lambda inv: inv.currency,
    "plan": lambda inv: inv.plan_id,
    "period": lambda inv: {"start": iso_or_none(inv.period_start), "end": iso_or_none(inv.period_end)},
    "period_start": lambda inv: iso_or_none(inv.period_start),
    "period_end": lambda inv: iso_or_none(inv.period_end),
    "subtotal": _money(lambda inv: inv.subtotal),
    "discount": _money(lambda inv: inv.discount),
    "discounts": lambda inv: list(inv.discounts or []),
    "tax": _money(lambda inv: inv.tax),
    "tax_rate": lambda inv: number(inv.tax_rate),
    "tax_country": lambda inv: inv.tax_country,
    "reverse_charge": lambda inv: inv.reverse_charge,
    "total": _money(lambda inv: inv.total),
    "credit_applied": _money(lambda inv: inv.credit_applied),
    # Credit notes taken off it (a cancellation's unused time): amount_due is what is left.
    "amount_credited": _money(lambda inv: inv.total - inv.credit_applied - inv.amount_due),
    "amount_due": _money(lambda inv: inv.amount_due),
    "amount_paid": _money(lambda inv: inv.amount_paid),
    "issued_at": lambda inv: iso_or_none(inv.issued_at),
    "paid_at": lambda inv: iso_or_none(inv.paid_at),
}

# The properties of the invoice events (invoice.finalized adds its own after them).
_EVENT = ("invoice_id", "number", "customer_id", "subscription_id", "status", "reason", "currency",
          "subtotal", "discount", "tax", "total", "credit_applied", "amount_due",
          "period_start", "period_end", "plan", "issued_at")  # fmt: skip

# The invoice of the API and the operations.
_SUMMARY = ("id", "number", "customer_id", "subscription_id", "status", "reason", "currency", "plan", "period",
            "subtotal", "discount", "discounts", "tax", "tax_rate", "tax_country", "reverse_charge",
            "total", "credit_applied", "amount_credited", "amount_due", "amount_paid", "issued_at", "paid_at")  # fmt: skip


def _view(inv: Invoice, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: _FIELDS[k](inv) for k in keys}


def invoice_event_properties(inv: Invoice) -> dict[str, Any]:
    return _view(inv, _EVENT)


def invoice_summary(inv: Invoice) -> dict[str, Any]:
    return _view(inv, _SUMMARY)


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
