"""A small billing history written straight into the tables, with every figure of the overview
worked out by hand in tests/console/test_overview_figures.py.

Range Feb 1 - Mar 31 2026, USD, catalog saas (E pays in EUR, F is on the `usage` catalog):
  A pro, monthly from Jan 15: 100 a month, 150 from Mar 15 (upgraded); Mar invoice unpaid
  B basic, monthly from Jan 10: 50 less 10 off; last period Feb 10 - Mar 10 (churned)
  C pro-annual: 1,200 for Jun 1 2025 - Jun 1 2026 (100 a month)
  D starter, new on Mar 5: 80; 30 of it refunded on Mar 20
  E pro in EUR; F meter on the `usage` catalog, Feb 20 - Mar 20 only
  G an invoice of Nov 2025 still open (over 90 days), suspended
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from engine.dunning.models import Account
from engine.payments.models import Payment, Receivable, Refund
from engine.sales.models import Customer, Invoice, PlanOwner

D = Decimal


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def invoice(s: Session, n: int, cid: str, plan: str, start: date, end: date, subtotal: str, *, tax: str = "0",
            discount: str = "0", reason: str = "cycle", status: str = "paid", currency: str = "USD",
            issued: date | None = None) -> str:
    total = D(subtotal) - D(discount) + D(tax)
    s.add(Invoice(id=f"inv_{n}", number=f"INV-{n:04d}", customer_id=cid, billing_key=f"k{n}", reason=reason,
                  status=status, currency=currency, plan_id=plan, period_start=start, period_end=end,
                  subtotal=D(subtotal), discount=D(discount), tax=D(tax), total=total, amount_due=total,
                  created_at=at(issued or start), issued_at=at(issued or start)))
    return f"inv_{n}"


def payment(s: Session, n: int, inv: str, cid: str, amount: str, day: date, status: str = "succeeded",
            currency: str = "USD") -> None:
    s.add(Payment(id=f"pay_{n}", idempotency_key=f"{inv}:{n}", invoice_id=inv, customer_id=cid, attempt=1,
                  provider="sandbox", method_type="card", amount=D(amount), currency=currency, status=status,
                  refunded_amount=D(0), captured_at=at(day) if status == "succeeded" else None,
                  decline_code=None if status == "succeeded" else "card_declined",
                  created_at=at(day), updated_at=at(day)))


def receivable(s: Session, inv: str, cid: str, due: str, paid: str, due_on: date) -> None:
    s.add(Receivable(invoice_id=inv, customer_id=cid, currency="USD", amount_due=D(due), amount_paid=D(paid),
                     credit_applied=D(0), payment_reference=f"RF{inv}", collection_method="automatic",
                     status="open", due_at=at(due_on), created_at=at(due_on)))


def seed(s: Session) -> None:
    for cid in "ABCDEFG":
        s.add(Customer(id=cid, name=f"Customer {cid}", created_at=at(date(2025, 1, 1))))
    for plan, catalog in (("pro", "saas"), ("basic", "saas"), ("pro-annual", "saas"), ("starter", "saas"),
                          ("meter", "usage")):
        s.add(PlanOwner(plan_id=plan, catalog=catalog))
    s.flush()
    invoice(s, 1, "A", "pro", date(2026, 1, 15), date(2026, 2, 15), "100", tax="8")
    a2 = invoice(s, 2, "A", "pro", date(2026, 2, 15), date(2026, 3, 15), "100", tax="8")
    a3 = invoice(s, 3, "A", "pro", date(2026, 3, 15), date(2026, 4, 15), "150", tax="12", status="finalized")
    invoice(s, 4, "A", "pro", date(2026, 2, 20), date(2026, 3, 15), "99", status="void", reason="change")
    a5 = invoice(s, 5, "A", "pro", date(2026, 3, 1), date(2026, 3, 15), "25", reason="change", status="finalized")
    invoice(s, 6, "B", "basic", date(2026, 1, 10), date(2026, 2, 10), "50", discount="10")
    b2 = invoice(s, 7, "B", "basic", date(2026, 2, 10), date(2026, 3, 10), "50", discount="10")
    invoice(s, 8, "C", "pro-annual", date(2025, 6, 1), date(2026, 6, 1), "1200")
    d1 = invoice(s, 9, "D", "starter", date(2026, 3, 5), date(2026, 4, 5), "80")
    e1 = invoice(s, 10, "E", "pro", date(2026, 2, 1), date(2026, 3, 1), "200", currency="EUR")
    invoice(s, 11, "F", "meter", date(2026, 2, 20), date(2026, 3, 20), "30")
    g1 = invoice(s, 12, "G", "pro", date(2025, 11, 1), date(2025, 12, 1), "60", status="finalized")
    s.flush()
    payment(s, 1, a2, "A", "108", date(2026, 2, 15))
    payment(s, 2, b2, "B", "40", date(2026, 2, 10), status="failed")
    payment(s, 3, b2, "B", "40", date(2026, 2, 13))
    payment(s, 4, a3, "A", "162", date(2026, 3, 15), status="failed")
    payment(s, 5, d1, "D", "80", date(2026, 3, 5))
    payment(s, 6, e1, "E", "200", date(2026, 2, 1), currency="EUR")
    s.flush()
    s.add(Refund(id="ref_1", idempotency_key="refund_1", payment_id="pay_5", customer_id="D", provider="sandbox",
                 amount=D("30"), currency="USD", status="succeeded", created_at=at(date(2026, 3, 20)),
                 updated_at=at(date(2026, 3, 20))))
    receivable(s, a3, "A", "162", "0", date(2026, 3, 15))
    receivable(s, a5, "A", "25", "0", date(2026, 4, 10))
    receivable(s, g1, "G", "60", "0", date(2025, 11, 1))
    s.add(Account(customer_id="A", state="warning", since=at(date(2026, 3, 16))))
    s.add(Account(customer_id="G", state="suspended", since=at(date(2025, 12, 20))))
