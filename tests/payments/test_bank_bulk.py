"""A large bank file records its exact payments in bulk (engine/payments/bank/write.py:record_bulk);
what it writes must equal what record_manual_payment writes for the same lines one by one:
payments, receivables, journal and payment.succeeded events. Runs on SQLite and PostgreSQL
(where the bulk path uses COPY)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from engine.clock import TestClock
from engine.payments import CollectableInvoice, PaymentService, open_receivable, reconcile_file
from engine.payments.bank import apply as bank_apply
from engine.payments.bank import match as bank_match
from engine.payments.models import JournalLine, Payment, Receivable
from engine.payments.references import invoice_reference
from engine.store import Database, OutboxEvent
from tests.payments.camt import Entry, camt053

N = 130  # over _bulk_insert's COPY threshold of 100 rows


def seeded(db: Database, svc: PaymentService) -> bytes:
    with db.session() as s:
        for i in range(N):
            open_receivable(s, CollectableInvoice(f"in_{i:04d}", f"cus_{i % 7}", Decimal(10 + i) + Decimal("0.05"),
                                                  "CHF"), collection_method="bank_transfer", service=svc)
    entries = [Entry(f"{10 + i}.05", reference=invoice_reference(f"in_{i:04d}"), acct_ref=f"A-{i}")
               for i in range(N)]
    return camt053(entries)


def picture(db: Database) -> dict[str, Any]:
    with db.session() as s:
        pays = {p.invoice_id: p for p in s.scalars(select(Payment))}
        ids = {p.id: p.invoice_id for p in pays.values()}
        return {
            "payments": sorted((p.invoice_id, p.idempotency_key, p.customer_id, p.attempt, p.provider, p.method_type,
                                p.amount, p.currency, p.status, p.provider_ref, p.payment_reference,
                                p.refunded_amount, p.captured_at, p.recorded_by is not None, p.needs_lookup)
                               for p in pays.values()),
            "receivables": sorted((r.invoice_id, r.amount_paid, r.status) for r in s.scalars(select(Receivable))),
            "journal": sorted((ids.get(j.entry_id.removeprefix("pay:"), j.entry_id), j.line_no, j.entry_date,
                               j.account, j.debit, j.credit, j.currency, j.description, j.reference)
                              for j in s.scalars(select(JournalLine).where(JournalLine.entry_id.like("pay:%")))),
            "events": sorted((e.type, e.customer_id, e.time, tuple(sorted(
                (k, ids.get(v, v) if k == "payment_id" else v) for k, v in e.properties.items())))
                for e in s.scalars(select(OutboxEvent).where(OutboxEvent.type == "payment.succeeded"))),
        }


def test_bulk_payments_equal_payments_recorded_one_by_one(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = TestClock(datetime(2026, 1, 20, 8, tzinfo=UTC))
    svc = PaymentService([], clock)
    data = seeded(db, svc)
    with db.session() as s:
        bulk = reconcile_file(s, data, service=svc)
    in_bulk = picture(db)
    # Again on a fresh schema, every line through record_manual_payment.
    db.drop_all()
    db.migrate()
    assert seeded(db, svc) == data
    monkeypatch.setattr(bank_match, "record_bulk", _one_by_one)
    with db.session() as s:
        single = reconcile_file(s, data, service=svc)
    assert bulk.counts == single.counts == {"matched": N}
    one_by_one = picture(db)
    assert len(in_bulk["payments"]) == N and len(in_bulk["journal"]) == 2 * N and len(in_bulk["events"]) == N
    assert in_bulk == one_by_one


def _one_by_one(session: Any, svc: PaymentService, import_id: str, bulk: list[Any], results: list[Any],
                *_meanwhile: Any) -> None:
    for row, line, rec, r in bulk:
        payment = bank_apply.apply_transfer(session, svc, row["booked_on"], row["reference"], rec.invoice_id, line.amount,
                                     Decimal(0), f"bank:{row['account']}:{line.provider_ref}", line.provider_ref,
                                     f"reconciliation:{import_id}", row["account"])
        row["payment_ids"] = [*row["payment_ids"], payment.id]
        r["payment_id"] = payment.id


def test_an_invoice_paid_while_the_file_is_matched_stops_the_import(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A card payment commits between the read of the receivables and the bulk write: the
    import stops (409 over HTTP, exit 1 in the CLI) rather than overwrite what was paid."""
    from engine.payments import ReconciliationError
    from engine.payments.models import BankLine, SettlementImport

    svc = PaymentService([], TestClock(datetime(2026, 1, 20, 8, tzinfo=UTC)))
    data = seeded(db, svc)
    real = bank_match.record_bulk

    def paid_meanwhile(session: Any, *args: Any) -> None:
        session.connection().execute(Receivable.__table__.update().where(Receivable.invoice_id == "in_0007")
                                     .values(amount_paid=Decimal("5.00")))
        real(session, *args)

    monkeypatch.setattr(bank_match, "record_bulk", paid_meanwhile)
    with pytest.raises(ReconciliationError, match="1 invoice"), db.session() as s:
        reconcile_file(s, data, service=svc)
    with db.session() as s:
        assert s.scalars(select(Payment)).all() == [] and s.scalars(select(BankLine)).all() == []
        assert s.scalars(select(SettlementImport)).all() == []
        assert s.get(Receivable, "in_0007").amount_paid == 0  # type: ignore[union-attr]
