"""Settlement matching on a ledger written directly: every rule of the matcher (by reference,
by attempt key, outside the day, another provider's reference, unsettled and refunded
payments, refunds, duplicates, references that need escaping), on SQLite (Python matches)
and PostgreSQL (the database matches while the file is parsed), with the two held equal on
PostgreSQL; and a broken line late in a large file leaves nothing behind."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, select

import engine.payments.reconcile as reconcile_module
from engine.clock import TestClock
from engine.payments import PaymentService, StatementFormatError, reconcile_file
from engine.payments.models import (
    JournalLine,
    Payment,
    ReconciliationResult,
    Refund,
    SettlementImport,
)
from engine.store import Database, OutboxEvent

DAY = datetime(2026, 3, 2, tzinfo=UTC)
HEADER = ["settlement_date", "payout_id", "type", "provider_reference", "payment_reference", "currency",
          "gross", "fee", "net", "created_at"]


@pytest.fixture
def service() -> PaymentService:
    return PaymentService([], TestClock(DAY + timedelta(days=1)))


def add_payment(s: Any, n: str, amount: str, *, status: str = "succeeded", ref: str | None = "",
                captured: datetime | None = None, provider: str = "sandbox", currency: str = "CHF") -> None:
    at = captured or DAY + timedelta(hours=10)
    s.add(Payment(id=f"pay_{n}", idempotency_key=f"inv_{n}:1", invoice_id=f"inv_{n}", customer_id=f"cus_{n}",
                  attempt=1, provider=provider, method_type="card", amount=Decimal(amount), currency=currency,
                  status=status, provider_ref=f"sbp_{n}" if ref == "" else ref, refunded_amount=Decimal(0),
                  captured_at=at if status in ("succeeded", "refunded") else None, created_at=at, updated_at=at))


def add_refund(s: Any, n: str, payment: str, amount: str) -> None:
    at = DAY + timedelta(hours=12)
    s.add(Refund(id=f"ref_{n}", idempotency_key=f"refund_{n}", payment_id=f"pay_{payment}",
                 customer_id=f"cus_{payment}", provider="sandbox", amount=Decimal(amount), currency="CHF",
                 status="succeeded", provider_ref=f"sbr_{n}", created_at=at, updated_at=at))


def line(kind: str, ref: str, key: str, gross: str, currency: str = "CHF", fee: str = "0.50") -> list[str]:
    return [DAY.date().isoformat(), "po_1", kind, ref, key, currency, gross, fee,
            str(Decimal(gross) - Decimal(fee)), (DAY + timedelta(hours=10)).isoformat()]


def to_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([HEADER, *rows])
    return out.getvalue().encode()


def seed_ledger(db: Database) -> bytes:
    """The ledger, and a settlement file for it with one line per rule."""
    with db.session() as s:
        add_payment(s, "ok", "10.00")
        add_payment(s, "amount", "20.00")
        add_payment(s, "currency", "30.00")
        add_payment(s, "lost", "40.00")  # captured today, not in the file
        add_payment(s, "yesterday", "50.00", captured=DAY - timedelta(minutes=5))  # outside the day
        add_payment(s, "noref", "60.00", ref=None)  # our record lacks the provider's reference
        add_payment(s, "failed", "70.00", status="failed")
        add_payment(s, "refunded", "80.00", status="refunded")
        add_payment(s, "other", "90.00", provider="otherpsp", ref="sbp_ghost")  # another provider's
        add_refund(s, "ok", "refunded", "80.00")
        add_refund(s, "short", "ok", "5.00")
        add_refund(s, "lost", "amount", "3.00")  # refunded today, not in the file
    rows = [
        line("charge", "sbp_ok", "inv_ok:1", "10.00"),
        line("charge", "sbp_amount", "inv_amount:1", "21.00"),
        line("charge", "sbp_currency", "inv_currency:1", "30.00", currency="EUR"),
        line("charge", "sbp_yesterday", "inv_yesterday:1", "50.00"),
        line("charge", "sbp_late_ref", "inv_noref:1", "60.00"),  # found by our attempt key
        line("charge", "sbp_failed", "inv_failed:1", "70.00"),
        line("charge", "sbp_refunded", "inv_refunded:1", "80.00"),
        line("charge", "sbp_ghost", "", "9.00"),  # only another provider knows it
        line("charge", "sbp_tab\there", "inv_back\\slash:1", "1.00"),  # needs escaping on the wire
        line("refund", "sbr_ok", "", "-80.00", fee="0.00"),
        line("refund", "sbr_short", "", "-4.00", fee="0.00"),
        line("refund", "sbr_ghost", "", "-1.00", fee="0.00"),
        line("charge", "sbp_ok", "inv_ok:1", "10.00"),  # the provider reported it twice
    ]
    return to_csv(rows)


EXPECTED_COUNTS = {"matched": 6, "amount_mismatch": 2, "currency_mismatch": 1, "missing_in_ledger": 4,
                   "missing_at_provider": 2}


def outcomes(db: Database, import_id: str) -> list[tuple[Any, ...]]:
    with db.session() as s:
        rows = s.scalars(select(ReconciliationResult).where(ReconciliationResult.import_id == import_id)).all()
        return sorted(
            (r.line_no, r.status, r.kind, r.provider_ref, r.payment_reference, r.payment_id,
             r.expected_amount, r.actual_amount, r.expected_currency, r.actual_currency, r.fee, r.payout_id,
             r.detail)
            for r in rows
        )


def test_every_matching_rule(db: Database, service: PaymentService) -> None:
    data = seed_ledger(db)
    with db.session() as s:
        report = reconcile_file(s, data, filename="day.csv", service=service)
    assert report.counts == EXPECTED_COUNTS
    by_line = {line_no: (status, payment_id, detail)
               for line_no, status, _, _, _, payment_id, *_, detail in outcomes(db, report.import_id)
               if line_no}
    assert by_line == {
        2: ("matched", "pay_ok", None),
        3: ("amount_mismatch", "pay_amount", "ledger has 20.00, the file 21.00"),
        4: ("currency_mismatch", "pay_currency", "ledger has CHF, the file EUR"),
        5: ("matched", "pay_yesterday", None),
        6: ("matched", "pay_noref", None),
        7: ("missing_in_ledger", "pay_failed", "the ledger has it failed"),
        8: ("matched", "pay_refunded", None),
        9: ("missing_in_ledger", None, "no such payment in the ledger"),
        10: ("missing_in_ledger", None, "no such payment in the ledger"),
        11: ("matched", "ref_ok", None),
        12: ("amount_mismatch", "ref_short", "ledger has -5.00, the file -4.00"),
        13: ("missing_in_ledger", None, "no such refund in the ledger"),
        14: ("matched", "pay_ok", None),
    }
    missing = sorted(m["payment_id"] for m in report.mismatches if m["kind"] == "missing_at_provider")
    assert missing == ["pay_lost", "ref_lost"]
    weird = next(m for m in report.mismatches if m["line"] == 10)
    assert (weird["provider_reference"], weird["payment_reference"]) == ("sbp_tab\there", "inv_back\\slash:1")
    with db.session() as s:
        published = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "reconciliation.mismatch")).all()
        assert len(published) == sum(EXPECTED_COUNTS.values()) - EXPECTED_COUNTS["matched"]
        assert {e.customer_id for e in published if e.properties["payment_id"] == "pay_amount"} == {"cus_amount"}
        # The payout is journaled from the file's totals, balanced.
        journal = s.scalars(select(JournalLine).where(JournalLine.reference == "po_1")).all()
        assert sum(j.debit for j in journal) == sum(j.credit for j in journal) > 0


def test_postgres_matching_equals_the_python_reference(pg_db: Database, service: PaymentService,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = seed_ledger(pg_db)
    with pg_db.session() as s:
        in_db = reconcile_file(s, data, service=service)
    ours = outcomes(pg_db, in_db.import_id)
    with pg_db.session() as s:  # forget it, then let Python match the same file on the same ledger
        for model in (ReconciliationResult, JournalLine, SettlementImport, OutboxEvent):
            s.execute(delete(model))
    monkeypatch.setattr(reconcile_module, "_match_in_database", lambda session: False)
    with pg_db.session() as s:
        in_python = reconcile_file(s, data, service=service)
    assert in_db.counts == in_python.counts == EXPECTED_COUNTS

    def strip(mismatches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in m.items() if k != "import_id"} for m in mismatches),
                      key=lambda m: (m["line"] or 0, m["payment_id"] or ""))

    assert strip(in_db.mismatches) == strip(in_python.mismatches)
    assert ours == outcomes(pg_db, in_python.import_id)


def test_a_broken_line_late_in_a_large_file_leaves_nothing(db: Database, service: PaymentService) -> None:
    """On PostgreSQL the first chunks are already matched and written when the parser reaches
    the broken line: they are rolled back, and what the caller wrote before stays."""
    rows = [line("charge", f"sbp_{i}", f"inv_{i}:1", "10.00") for i in range(45_000)]
    rows[43_000][8] = "9.99"  # gross - fee != net
    with db.session() as s:
        add_payment(s, "before", "1.00")
        with pytest.raises(StatementFormatError, match=r"day.csv:43002: gross 10.00 - fee 0.50 != net 9.99"):
            reconcile_file(s, to_csv(rows), filename="day.csv", service=service)
        s.flush()  # the caller's transaction is still usable
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
        for model in (SettlementImport, ReconciliationResult, JournalLine, OutboxEvent):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model
