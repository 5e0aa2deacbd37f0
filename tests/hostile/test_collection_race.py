"""Two collections of one invoice at once (the worker that saw invoice.finalized and an admin
attaching a card, in two processes on one database): the second returns what the first did,
and the provider is asked for the money once. Before, the second stopped on the journal's
unique line (`uq_pay_journal_line`) with an IntegrityError."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine.clock import TestClock
from engine.payments import (
    ChargeOutcome,
    ChargeRequest,
    CollectableInvoice,
    CollectionResult,
    PaymentService,
    PaymentState,
    add_payment_method,
    collect_invoice,
)
from engine.payments.models import JournalLine, Payment, Receivable
from engine.store import Database


@dataclass
class HoldingProvider:
    """Takes every charge; holds the first one until `release` is set, so the other
    collection runs while the first one's transaction is open."""

    name: str = "sandbox"
    charged: list[str] = field(default_factory=list)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def lookup(self, idempotency_key: str) -> ChargeOutcome | None:
        return None

    def charge(self, request: ChargeRequest) -> ChargeOutcome:
        self.charged.append(request.idempotency_key)
        self.holding.set()
        self.release.wait(10)
        return ChargeOutcome(PaymentState.SUCCEEDED, f"pr_{len(self.charged)}", request.amount, request.currency,
                             "captured", captured_at=datetime(2026, 11, 1, tzinfo=UTC))

    def refund(self, request: Any) -> Any:
        raise NotImplementedError

    def lookup_refund(self, idempotency_key: str) -> Any:
        return None

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> Any:
        raise NotImplementedError


INVOICE = CollectableInvoice("inv_race", "cus_race", Decimal("49.00"), "USD")


def _collect(db: Database, service: PaymentService) -> CollectionResult:
    with db.session() as s:
        return collect_invoice(s, INVOICE, service=service)


def test_the_second_of_two_simultaneous_collections_returns_the_first_ones_result(db: Database) -> None:
    provider = HoldingProvider()
    service = PaymentService([provider], TestClock(datetime(2026, 11, 1, tzinfo=UTC)))  # type: ignore[list-item]
    with db.session() as s:
        add_payment_method(s, "cus_race", "card", "4242424242424242", service=service)
    other = Database(db.url)  # the other process: its own engine and connections
    results: dict[str, Any] = {}

    def run(name: str, database: Database) -> None:
        try:
            results[name] = _collect(database, service)
        except Exception as exc:  # the answer the test checks, whatever it is
            results[name] = exc

    first = threading.Thread(target=run, args=("first", db))
    second = threading.Thread(target=run, args=("second", other))
    try:
        first.start()
        assert provider.holding.wait(10), "the first collection never reached the provider"
        second.start()
        second.join(0.5)  # the second is now waiting on the first one's transaction
        provider.release.set()
        first.join(20)
        second.join(20)
    finally:
        provider.release.set()
        other.dispose()
    assert not first.is_alive() and not second.is_alive()
    assert isinstance(results["first"], CollectionResult), results["first"]
    assert results["second"] == results["first"]
    assert results["first"].status == "paid"
    assert provider.charged == ["inv_race:1"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
        assert s.scalar(select(func.count()).select_from(Receivable)) == 1
        debit = s.scalar(select(func.sum(JournalLine.debit)))
        credit = s.scalar(select(func.sum(JournalLine.credit)))
        assert debit == credit == Decimal("98.00")  # the invoice once, its payment once
