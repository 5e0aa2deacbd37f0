"""The books' month close (docs/books.md, *The month close*): sales prices the usage of the
periods still open at the month's end (engine/sales/accrual.py, the invoice's pricing), and
payments posts the close with it: deferred revenue, and revenue earned and not invoiced yet.
The doors are `POST /v1/books/close` and `billing books close`."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from engine import payments, sales
from engine.payments import books


def close_month(
    session: Session, month: date, currencies: list[str] | None, *, service: payments.PaymentService
) -> list[dict[str, Any]]:
    """Close `month` in each of `currencies` (None: every currency billed, or with usage to
    accrue), each its own entries; the caller's transaction holds them all."""
    end = books.month_end(month).date()
    accruals = [
        books.UsageAccrual(a.customer_id, a.subscription_id, a.plan, a.currency, a.amount)
        for a in sales.unbilled_usage(session, end)
    ]
    wanted = currencies or sorted(set(books.currencies(session)) | {a.currency for a in accruals})
    return [books.close_month(session, month, c, service=service, accruals=accruals) for c in wanted]
