"""Collection end to end against the sandbox PSP over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from engine.clock import SystemClock
from engine.payments import (
    PaymentService,
    RefundRejected,
    SandboxAdapter,
    add_payment_method,
    collect_invoice,
    customer_credit_balance,
    handle_invoice_finalized,
    invoice_payment_summary,
    record_manual_payment,
    refund_payment,
    repair_pending,
    retry_invoice_payment,
)
from engine.payments.models import Payment, Receivable, Refund, WebhookReceipt
from engine.payments.sandbox import (
    CARD_ASYNC,
    CARD_DUPLICATE_WEBHOOK,
    CARD_EXPIRED,
    CARD_GENERIC_DECLINE,
    CARD_INSUFFICIENT_FUNDS,
    CARD_SLOW,
    CARD_SUCCESS,
)
from engine.store import Database, ProcessedEvent, new_event_id
from tests.payments.conftest import (
    API_KEY,
    SECRET,
    SLOW_SECONDS,
    Server,
    events,
    invoice,
    new_id,
    sandbox_payments,
    sandbox_state,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


def setup_customer(db: Database, service: PaymentService, method: str = "card",
                   token: str | None = CARD_SUCCESS) -> str:
    customer = new_id("cus")
    with db.session() as s:
        add_payment_method(s, customer, method, token, service=service)
    return customer


def test_card_success_marks_invoice_paid_once(any_db: Database, service: PaymentService,
                                              sandbox: Server) -> None:
    customer = setup_customer(any_db, service)
    inv = invoice(customer, "49.00")
    with any_db.session() as s:
        result = collect_invoice(s, inv, service=service)
    assert result.status == "paid" and result.remaining == 0
    # Collecting the same attempt again is a no-op: same payment, no second charge.
    with any_db.session() as s:
        again = collect_invoice(s, inv, service=service)
    assert again.payment_id == result.payment_id
    paid = events(any_db, "payment.succeeded", invoice_id=inv.invoice_id)
    assert len(paid) == 1
    assert paid[0]["amount"] == "49.00" and paid[0]["invoice_paid"] is True
    assert paid[0]["method"] == "card" and paid[0]["attempt"] == 1
    charges = sandbox_payments(sandbox, inv.invoice_id)
    assert len(charges) == 1 and charges[0]["status"] == "captured"


@pytest.mark.parametrize(
    ("card", "code", "retryable"),
    [
        (CARD_GENERIC_DECLINE, "generic_decline", False),
        (CARD_INSUFFICIENT_FUNDS, "insufficient_funds", True),
        (CARD_EXPIRED, "expired_card", False),
    ],
)
def test_each_decline_publishes_failure_with_attempt(pdb: Database, service: PaymentService,
                                                     card: str, code: str, retryable: bool) -> None:
    customer = setup_customer(pdb, service, token=card)
    inv = invoice(customer, "20.00")
    with pdb.session() as s:
        result = collect_invoice(s, inv, service=service)
    assert (result.status, result.decline_code, result.retryable) == ("failed", code, retryable)
    failed = events(pdb, "payment.failed", invoice_id=inv.invoice_id)
    assert [(e["decline_code"], e["retryable"]) for e in failed] == [(code, retryable)]
    inv_failed = events(pdb, "invoice.payment_failed", invoice_id=inv.invoice_id)
    assert len(inv_failed) == 1
    assert inv_failed[0]["attempt"] == 1 and inv_failed[0]["invoice"]["attempt"] == 1
    assert inv_failed[0]["decline_code"] == code and inv_failed[0]["amount_due"] == "20.00"
    assert not events(pdb, "payment.succeeded", invoice_id=inv.invoice_id)


def test_retry_after_insufficient_funds_succeeds_with_new_method(pdb: Database, service: PaymentService,
                                                                 sandbox: Server) -> None:
    customer = setup_customer(pdb, service, token=CARD_INSUFFICIENT_FUNDS)
    inv = invoice(customer, "30.00")
    with pdb.session() as s:
        assert collect_invoice(s, inv, service=service).status == "failed"
        add_payment_method(s, customer, "card", CARD_SUCCESS, service=service)
    with pdb.session() as s:
        second = retry_invoice_payment(s, inv.invoice_id, service=service)
    assert second.status == "paid"
    keys = sorted(p["idempotency_key"] for p in sandbox_payments(sandbox, inv.invoice_id))
    assert keys == [f"{inv.invoice_id}:1", f"{inv.invoice_id}:2"]
    assert [e["attempt"] for e in events(pdb, "payment.succeeded", invoice_id=inv.invoice_id)] == [2]


def test_timeout_then_success_on_retry_without_double_charge(pdb: Database, sandbox: Server) -> None:
    impatient = SandboxAdapter(sandbox.url, api_key=API_KEY, webhook_secret=SECRET, timeout=0.5)
    svc = PaymentService([impatient], SystemClock())
    customer = setup_customer(pdb, svc, token=CARD_SLOW)
    inv = invoice(customer, "15.00")
    with pdb.session() as s:
        first = collect_invoice(s, inv, service=svc)
    assert first.status == "pending"  # the outcome is unknown, so nothing is counted yet
    with pdb.session() as s:
        p = s.get(Payment, first.payment_id)
        assert p is not None and p.needs_lookup
    # A next attempt is refused while the first one's outcome is unknown.
    with pdb.session() as s:
        blocked = retry_invoice_payment(s, inv.invoice_id, service=svc)
    assert blocked.status in ("blocked", "paid")
    # The provider finishes the slow request on its side: authorized, never captured, because
    # the capture step of our charge was never reached.
    slow = wait_for(lambda: sandbox_payments(sandbox, inv.invoice_id), timeout=SLOW_SECONDS + 3)
    assert slow[0]["status"] == "authorized"
    with pdb.session() as s:
        repaired = repair_pending(s, service=svc)
    with pdb.session() as s:
        again = collect_invoice(s, inv, service=svc)
    assert again.status == "paid"
    assert repaired[first.payment_id] == "succeeded"  # looked up, then captured
    assert [p["status"] for p in sandbox_payments(sandbox, inv.invoice_id)] == ["captured"]
    assert len(events(pdb, "payment.succeeded", invoice_id=inv.invoice_id)) == 1
    impatient.close()


def test_duplicated_webhook_is_applied_once(pdb: Database, service: PaymentService,
                                            sandbox: Server) -> None:
    customer = setup_customer(pdb, service, token=CARD_DUPLICATE_WEBHOOK)
    inv = invoice(customer, "12.00")
    with pdb.session() as s:
        assert collect_invoice(s, inv, service=service).status == "pending"
    provider_ref = sandbox_payments(sandbox, inv.invoice_id)[0]["id"]

    def delivered_twice() -> bool:
        hooks = [w for w in sandbox_state(sandbox)["webhooks"] if w["ok"]]
        with pdb.session() as s:
            n = s.scalar(select(func.count()).select_from(WebhookReceipt))
        return bool(n) and len([w for w in hooks if w["type"] == "payment.captured"]) >= 2

    try:
        wait_for(delivered_twice)
    except AssertionError:
        print(sandbox_state(sandbox)["webhooks"][-6:], sandbox_payments(sandbox, inv.invoice_id))
        raise
    wait_for(lambda: events(pdb, "payment.succeeded", invoice_id=inv.invoice_id))
    import time

    time.sleep(0.3)  # let the second delivery finish
    assert len(events(pdb, "payment.succeeded", invoice_id=inv.invoice_id)) == 1
    with pdb.session() as s:
        summary = invoice_payment_summary(s, inv.invoice_id)
        assert summary is not None and summary["status"] == "paid"
        p = s.scalar(select(Payment).where(Payment.provider_ref == provider_ref))
        assert p is not None and p.status == "succeeded"


@pytest.mark.parametrize(("method", "token", "outcome"), [
    ("paypal", "buyer@example.com", "paid"),
    ("twint", "+41790000001", "paid"),
    ("paypal", "decline@example.com", "failed"),
    ("card", CARD_ASYNC, "paid"),
])
def test_async_methods_settle_by_webhook(pdb: Database, service: PaymentService, method: str,
                                         token: str, outcome: str) -> None:
    customer = setup_customer(pdb, service, method=method, token=token)
    inv = invoice(customer, "9.90")
    with pdb.session() as s:
        assert collect_invoice(s, inv, service=service).status == "pending"

    def settled() -> str | None:
        with pdb.session() as s:
            rec = s.get(Receivable, inv.invoice_id)
            p = s.scalar(select(Payment).where(Payment.invoice_id == inv.invoice_id))
            assert rec is not None and p is not None
            return "paid" if rec.status == "paid" else ("failed" if p.status == "failed" else None)

    assert wait_for(settled) == outcome
    if outcome == "failed":
        assert events(pdb, "invoice.payment_failed", invoice_id=inv.invoice_id)[0]["decline_code"] == "payer_rejected"


def test_bad_signature_and_replayed_timestamp_are_rejected(pdb: Database, service: PaymentService,
                                                           receiver: Server, sandbox: Server) -> None:
    from engine.payments.sandbox import sign_payload

    customer = setup_customer(pdb, service, token=CARD_ASYNC)
    inv = invoice(customer, "5.00")
    with pdb.session() as s:
        collect_invoice(s, inv, service=service)
    sb = sandbox_payments(sandbox, inv.invoice_id)[0]
    forged = dict(sb, status="captured", captured_at=sb["created"])
    body = json.dumps({"id": "whevt_forged", "type": "payment.captured", "created": 1, "data": forged}).encode()
    import time

    url = f"{receiver.url}/webhooks/psp/sandbox"
    now = int(time.time())
    bad = httpx.post(url, content=body, headers={"Sandbox-Signature": sign_payload("wrong", now, body)})
    assert bad.status_code == 400 and "bad signature" in bad.json()["detail"]
    old = now - 3600
    stale = httpx.post(url, content=body, headers={"Sandbox-Signature": sign_payload(SECRET, old, body)})
    assert stale.status_code == 400 and "replayed or stale" in stale.json()["detail"]
    missing = httpx.post(url, content=body)
    assert missing.status_code == 400
    with pdb.session() as s:
        assert s.scalar(select(WebhookReceipt).where(WebhookReceipt.event_id == "whevt_forged")) is None


CRASH_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    from engine.clock import SystemClock
    from engine.payments import PaymentService, SandboxAdapter, handle_invoice_finalized
    from engine.store import Database
    db_url, sandbox_url, api_key, secret, envelope = sys.argv[1:6]
    db = Database(db_url)
    service = PaymentService([SandboxAdapter(sandbox_url, api_key=api_key, webhook_secret=secret)], SystemClock())
    with db.session() as s:
        handle_invoice_finalized(s, json.loads(envelope), service=service)
        s.flush()
        # The provider has answered and captured; we die before our commit.
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_killed_between_provider_answer_and_commit_then_restarted(pdb: Database, service: PaymentService,
                                                                  sandbox: Server) -> None:
    customer = setup_customer(pdb, service)
    invoice_id = new_id("inv")
    envelope = {"id": new_event_id(), "type": "invoice.finalized", "customer_id": customer,
                "time": "2026-01-01T00:00:00Z",
                "properties": {"invoice_id": invoice_id, "amount_due": "77.50", "currency": "CHF",
                               "lines": [{"plan": "pro", "amount": "70.00"}], "tax": "7.50"}}
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, pdb.url, sandbox.url, API_KEY, SECRET, json.dumps(envelope)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # The provider took the money; we recorded nothing, not even that we saw the event.
    charges = sandbox_payments(sandbox, invoice_id)
    assert len(charges) == 1 and charges[0]["status"] == "captured"
    with pdb.session() as s:
        assert s.scalar(select(func.count()).select_from(Payment).where(Payment.invoice_id == invoice_id)) == 0
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)
                        .where(ProcessedEvent.event_id == envelope["id"])) == 0
    # Restart: the bus redelivers the unprocessed event; the attempt is looked up, not re-sent.
    with pdb.session() as s:
        handle_invoice_finalized(s, envelope, service=service)
    with pdb.session() as s:
        handle_invoice_finalized(s, envelope, service=service)  # and a second redelivery is a no-op
    assert len(sandbox_payments(sandbox, invoice_id)) == 1
    paid = events(pdb, "payment.succeeded", invoice_id=invoice_id)
    assert len(paid) == 1 and paid[0]["invoice_paid"] is True
    with pdb.session() as s:
        p = s.scalar(select(Payment).where(Payment.invoice_id == invoice_id))
        assert p is not None and p.status == "succeeded" and p.provider_ref == charges[0]["id"]


def test_refunds_partial_full_and_above_paid_rejected(any_db: Database, service: PaymentService,
                                                      sandbox: Server) -> None:
    customer = setup_customer(any_db, service)
    inv = invoice(customer, "100.00")
    with any_db.session() as s:
        payment_id = collect_invoice(s, inv, service=service).payment_id
    assert payment_id
    with any_db.session() as s:
        r1 = refund_payment(s, payment_id, Decimal("30.00"), reason="goodwill", service=service)
        assert r1.status == "succeeded"
    with pytest.raises(RefundRejected, match="exceeds the refundable 70.00"), any_db.session() as s:
        refund_payment(s, payment_id, Decimal("70.01"), service=service)
    with any_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Refund)) == 1  # nothing half-recorded
        r2 = refund_payment(s, payment_id, service=service)  # the rest
        assert r2.amount == Decimal("70.00")
    with any_db.session() as s:
        p = s.get(Payment, payment_id)
        assert p is not None and p.status == "refunded" and p.refunded_amount == Decimal("100.00")
    with pytest.raises(RefundRejected), any_db.session() as s:
        refund_payment(s, payment_id, Decimal("0.01"), service=service)
    refunded = events(any_db, "payment.refunded", payment_id=payment_id)
    assert [(e["amount"], e["fully_refunded"]) for e in refunded] == [("30.00", False), ("70.00", True)]
    provider_refunds = [r for r in sandbox_state(sandbox)["refunds"]
                        if r["payment"] == sandbox_payments(sandbox, inv.invoice_id)[0]["id"]]
    assert sorted(r["amount"] for r in provider_refunds) == ["30.00", "70.00"]


def test_partial_payment_then_overpayment_becomes_credit_for_next_invoice(
        any_db: Database, service: PaymentService, sandbox: Server) -> None:
    customer = setup_customer(any_db, service)
    first = invoice(customer, "100.00")
    with any_db.session() as s:
        from engine.payments import open_receivable

        open_receivable(s, first, collection_method="bank_transfer", service=service)
        record_manual_payment(s, customer_id=customer, amount=Decimal("60.00"), currency="CHF",
                              invoice_id=first.invoice_id, method_type="cash", recorded_by="admin",
                              service=service)
    with any_db.session() as s:
        summary = invoice_payment_summary(s, first.invoice_id)
        assert summary is not None and summary["status"] == "open" and summary["remaining"] == "40.00"
        record_manual_payment(s, customer_id=customer, amount=Decimal("55.00"), currency="CHF",
                              invoice_id=first.invoice_id, method_type="cash", service=service)
    with any_db.session() as s:
        summary = invoice_payment_summary(s, first.invoice_id)
        assert summary is not None and summary["status"] == "paid" and summary["remaining"] == "0.00"
        assert customer_credit_balance(s, customer, "CHF") == Decimal("15.00")
    paid = events(any_db, "payment.succeeded", invoice_id=first.invoice_id)
    assert [(e["applied_to_invoice"], e["credited"], e["invoice_paid"]) for e in paid] == [
        ("60.00", "0.00", False), ("40.00", "15.00", True)]
    # The next invoice spends the credit first and charges only the rest.
    second = invoice(customer, "49.00")
    with any_db.session() as s:
        result = collect_invoice(s, second, service=service)
    assert result.status == "paid"
    charged = sandbox_payments(sandbox, second.invoice_id)
    assert [c["amount"] for c in charged] == ["34.00"]
    with any_db.session() as s:
        assert customer_credit_balance(s, customer, "CHF") == Decimal(0)
        summary = invoice_payment_summary(s, second.invoice_id)
        assert summary is not None and summary["credit_applied"] == "15.00"
    # An invoice fully covered by credit is paid without the provider.
    with any_db.session() as s:
        record_manual_payment(s, customer_id=customer, amount=Decimal("10.00"), currency="CHF", service=service)
        third = invoice(customer, "10.00")
        assert collect_invoice(s, third, service=service).status == "paid"
    assert not sandbox_payments(sandbox, third.invoice_id)
    assert events(any_db, "payment.succeeded", invoice_id=third.invoice_id)[0]["method"] == "credit"


def test_invoice_finalized_handler_is_idempotent_and_bank_transfer_waits(pdb: Database,
                                                                         service: PaymentService,
                                                                         sandbox: Server) -> None:
    customer = setup_customer(pdb, service)
    envelope = {"id": new_event_id(), "type": "invoice.finalized", "customer_id": customer,
                "properties": {"invoice_id": new_id("inv"), "amount_due": "10.00", "currency": "CHF"}}
    with pdb.session() as s:
        handle_invoice_finalized(s, envelope, service=service)
    with pdb.session() as s:
        handle_invoice_finalized(s, envelope, service=service)
    assert len(sandbox_payments(sandbox, envelope["properties"]["invoice_id"])) == 1
    transfer = {"id": new_event_id(), "type": "invoice.finalized", "customer_id": customer,
                "properties": {"invoice_id": new_id("inv"), "amount_due": "10.00", "currency": "CHF",
                               "collection_method": "bank_transfer"}}
    with pdb.session() as s:
        handle_invoice_finalized(s, transfer, service=service)
    with pdb.session() as s:
        summary = invoice_payment_summary(s, transfer["properties"]["invoice_id"])
        assert summary is not None and summary["status"] == "open"
        assert summary["payment_reference"].startswith("RF")
    assert not sandbox_payments(sandbox, transfer["properties"]["invoice_id"])


def test_no_payment_method_publishes_failure(pdb: Database, service: PaymentService) -> None:
    inv = invoice(new_id("cus"), "10.00")
    with pdb.session() as s:
        assert collect_invoice(s, inv, service=service).status == "no_payment_method"
    assert events(pdb, "invoice.payment_failed", invoice_id=inv.invoice_id)[0]["decline_code"] == "no_payment_method"
