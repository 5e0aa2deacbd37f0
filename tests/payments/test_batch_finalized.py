"""invoice.finalized's batch twin (payments.handle_invoices_finalized): a bus batch's
receivables, references, attempts, credit balances and default methods are read ahead in a
few queries, and the batch collects exactly what the events one by one collect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from engine.clock import TestClock
from engine.payments import (
    ChargeOutcome,
    ChargeRequest,
    PaymentService,
    PaymentState,
    add_payment_method,
    handle_invoice_finalized,
    handle_invoices_finalized,
)
from engine.payments.models import (
    CreditBalance,
    InvoiceReference,
    JournalLine,
    Payment,
    PaymentMethod,
    Receivable,
    RevenueScheduleRow,
)
from engine.store import Database, OutboxEvent

NOW = datetime(2027, 3, 1, 6, tzinfo=UTC)


class Cards:
    """An in-process provider: a token "tok_decline" declines (retryable), others pay."""

    name = "cards"

    def __init__(self) -> None:
        self.charged: list[str] = []

    def charge(self, request: ChargeRequest) -> ChargeOutcome:
        self.charged.append(request.idempotency_key)
        ok = request.token != "tok_decline"
        return ChargeOutcome(
            PaymentState.SUCCEEDED if ok else PaymentState.FAILED, f"ch_{request.idempotency_key}",
            request.amount, request.currency, "succeeded" if ok else "declined",
            decline_code=None if ok else "insufficient_funds", retryable=None if ok else True,
            captured_at=NOW if ok else None, idempotency_key=request.idempotency_key,
        )

    def lookup(self, idempotency_key: str) -> ChargeOutcome | None:
        return None


def _service() -> tuple[PaymentService, Cards]:
    cards = Cards()
    return PaymentService([cards], TestClock(NOW), default_provider="cards"), cards  # type: ignore[list-item]


def _env(n: int, customer: str, invoice: str, amount: str, **props: Any) -> dict[str, Any]:
    return {"id": f"evt_{n}", "type": "invoice.finalized", "customer_id": customer, "time": NOW.isoformat(),
            "properties": {"invoice_id": invoice, "amount_due": amount, "currency": "CHF", **props}}


def _seed(db: Database, service: PaymentService) -> None:
    with db.session() as s:
        add_payment_method(s, "cus_credit", "card", "tok_ok", provider="cards", service=service)
        s.add(CreditBalance(customer_id="cus_credit", currency="CHF", balance=Decimal("30.00")))
        add_payment_method(s, "cus_declines", "card", "tok_decline", provider="cards", service=service)
        add_payment_method(s, "cus_opened", "card", "tok_ok", provider="cards", service=service)
        add_payment_method(s, "cus_ref", "card", "tok_ok", provider="cards", service=service)
    with db.session() as s:  # an invoice opened before (due later), and an event applied before
        handle_invoice_finalized(s, _env(90, "cus_opened", "inv_opened", "15.00",
                                         due_at=(NOW + timedelta(days=3)).isoformat()), service=service)
        handle_invoice_finalized(s, _env(91, "cus_credit", "inv_before", "0.00"), service=service)


def _batch() -> list[dict[str, Any]]:
    line = {"plan": "pro", "price_type": "subscription", "amount": "40.00",
            "period_start": NOW.isoformat(), "period_end": (NOW + timedelta(days=31)).isoformat()}
    return [
        _env(1, "cus_credit", "inv_c1", "20.00"),  # customer credit pays it all
        _env(2, "cus_credit", "inv_c2", "50.00"),  # the credit left (10.00), the rest charged
        _env(3, "cus_declines", "inv_d", "12.00"),
        _env(4, "cus_none", "inv_n", "9.00"),  # no payment method
        _env(5, "cus_free", "inv_z", "0.00"),
        _env(6, "cus_new", "inv_a1", "40.00", payment_method="tok_ok", number="2027-0006", lines=[line]),
        _env(7, "cus_new", "inv_a2", "40.00", payment_method="tok_ok", number="2027-0007", lines=[line]),
        _env(6, "cus_new", "inv_a1", "40.00", payment_method="tok_ok"),  # the same event twice
        _env(91, "cus_credit", "inv_before", "0.00"),  # applied before: nothing again
        _env(8, "cus_opened", "inv_opened", "15.00"),  # opened before, due now
        _env(9, "cus_ref", "inv_r1", "5.00", payment_reference="RF18539007547034"),
        _env(10, "cus_ref", "inv_r2", "5.00", payment_reference="RF18539007547034"),  # taken: another
    ]


def _state(db: Database) -> dict[str, Any]:
    """What a user of the books and payments would check (ids of payments left out: random)."""
    with db.read_session() as s:
        return {
            "receivables": sorted((r.invoice_id, r.status, r.amount_paid, r.credit_applied, r.last_attempt,
                                   r.payment_reference) for r in s.scalars(select(Receivable))),
            "payments": sorted((p.idempotency_key, p.status, p.amount, p.decline_code, p.method_id is not None)
                               for p in s.scalars(select(Payment))),
            "methods": sorted((m.customer_id, m.token, m.is_default) for m in s.scalars(select(PaymentMethod))),
            "credit": sorted((b.customer_id, b.balance) for b in s.scalars(select(CreditBalance))),
            "journal": sorted((j.account, j.debit, j.credit, j.reference) for j in s.scalars(select(JournalLine))),
            "bank": sorted((r.reference, r.invoice_id) for r in s.scalars(select(InvoiceReference))),
            "schedule": sorted((r.invoice_id, r.month, r.amount) for r in s.scalars(select(RevenueScheduleRow))),
            "events": sorted((e.type, e.customer_id, e.properties.get("invoice_id"), e.properties.get("amount"),
                              e.properties.get("decline_code")) for e in s.scalars(select(OutboxEvent))),
        }


def _fresh(tmp_path: Path, name: str) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path}/{name}.db")
    db.migrate()
    yield db
    db.dispose()


def test_a_batch_collects_exactly_what_the_events_one_by_one_collect(tmp_path: Path) -> None:
    results = []
    for name in ("single", "batch"):
        for db in _fresh(tmp_path, name):
            service, cards = _service()
            _seed(db, service)
            with db.session() as s:
                if name == "single":
                    for envelope in _batch():
                        handle_invoice_finalized(s, envelope, service=service)
                else:
                    handle_invoices_finalized(s, _batch(), service=service)
            results.append((_state(db), sorted(cards.charged)))
    (single, single_charged), (batch, batch_charged) = results
    assert batch == single
    assert batch_charged == single_charged == ["inv_a1:1", "inv_a2:1", "inv_c2:1", "inv_d:1", "inv_opened:1",
                                               "inv_r1:1", "inv_r2:1"]
    # One method adopted for cus_new (the second invoice saw the first's), credit spent once.
    assert [m for m in batch["methods"] if m[0] == "cus_new"] == [("cus_new", "tok_ok", True)]
    assert batch["credit"] == [("cus_credit", Decimal("0.00"))]
    refs = {r[0]: r[5] for r in batch["receivables"]}
    assert refs["inv_r1"] == "RF18539007547034" and refs["inv_r2"] != refs["inv_r1"]


def _selects(db: Database, envelopes: list[dict[str, Any]], service: PaymentService) -> int:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    with db.session() as s:
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            handle_invoices_finalized(s, envelopes, service=service)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def test_a_batch_reads_in_as_many_queries_for_twelve_invoices_as_for_three(db: Database) -> None:
    service, cards = _service()
    customers = [f"cus_{n}" for n in range(15)]
    with db.session() as s:
        for c in customers:
            add_payment_method(s, c, "card", "tok_ok", provider="cards", service=service)
    three = _selects(db, [_env(n, customers[n], f"inv_{n}", "10.00", number=f"2027-{n:04}")
                          for n in range(3)], service)
    twelve = _selects(db, [_env(n, customers[n], f"inv_{n}", "10.00", number=f"2027-{n:04}")
                           for n in range(3, 15)], service)
    assert three == twelve  # one by one, each invoice read its receivable, attempts, credit, method
    assert len(cards.charged) == 15
    with db.read_session() as s:
        assert {r.status for r in s.scalars(select(Receivable))} == {"paid"}


def _statements(db: Database, envelopes: list[dict[str, Any]], service: PaymentService) -> list[str]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    with db.session() as s:
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            handle_invoices_finalized(s, envelopes, service=service)
            s.flush()  # what the bus does at the batch's end
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    return seen


def test_a_batch_writes_in_as_many_statements_for_twelve_invoices_as_for_three(db: Database) -> None:
    """Each invoice used to be opened in a savepoint of its own and flushed three times (the
    receivable, its bank references, its attempt before the charge), its schedule written
    apart: ~13 statements an invoice. A batch writes what its invoices add at its end."""
    service, cards = _service()
    customers = [f"cus_{n}" for n in range(15)]
    with db.session() as s:
        for c in customers:
            add_payment_method(s, c, "card", "tok_ok", provider="cards", service=service)
    line = {
        "plan": "pro",
        "price_type": "usage",
        "amount": "10.00",
        "period_start": NOW.isoformat(),
        "period_end": (NOW + timedelta(days=31)).isoformat(),
    }

    def batch(numbers: range) -> list[dict[str, Any]]:
        return [
            _env(n, customers[n], f"inv_{n}", "10.00", number=f"2027-{n:04}", lines=[line], subscription_id=f"sub_{n}")
            for n in numbers
        ]

    three, twelve = _statements(db, batch(range(3)), service), _statements(db, batch(range(3, 15)), service)
    assert not [s for s in three + twelve if s.startswith(("SAVEPOINT", "RELEASE"))]
    if db.engine.dialect.name == "sqlite":
        # SQLite's ORM inserts of a table with an autoincrement key go a row at a time (no
        # ordered RETURNING): the journal's lines and the outbox's events. Everything else:
        three, twelve = (
            [s for s in x if not s.startswith(("INSERT INTO pay_journal", "INSERT INTO outbox_events"))]
            for x in (three, twelve)
        )
    assert len(three) == len(twelve), (three, twelve)
    assert len(cards.charged) == 15
    with db.read_session() as s:
        assert {r.status for r in s.scalars(select(Receivable))} == {"paid"}
        assert len(s.scalars(select(RevenueScheduleRow)).all()) == 15


def test_an_invoice_finalized_twice_in_one_batch_is_scheduled_once(db: Database) -> None:
    """Two events of one invoice in a batch (sales published it again under another id): the
    second finds the receivable and the schedule the first wrote, as one by one it would."""
    service, cards = _service()
    with db.session() as s:
        add_payment_method(s, "cus_twice", "card", "tok_ok", provider="cards", service=service)
    line = {"plan": "pro", "price_type": "subscription", "amount": "10.00", "period_start": NOW.isoformat(),
            "period_end": (NOW + timedelta(days=31)).isoformat()}
    with db.session() as s:
        handle_invoices_finalized(s, [_env(n, "cus_twice", "inv_twice", "10.00", lines=[line]) for n in (1, 2)],
                                  service=service)
    assert cards.charged == ["inv_twice:1"]
    with db.read_session() as s:
        rows = [(r.source_id, r.month, r.amount) for r in s.scalars(select(RevenueScheduleRow))]
    assert len(rows) == len(set(rows)) == 1
