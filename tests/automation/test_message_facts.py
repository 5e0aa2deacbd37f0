"""What the messages of a batch quote beyond their contexts (a payment reference, whether the
customer pays by transfer) is read for the whole batch at once: the queries of a batch of N
messages do not grow with N, and each message is the one it would be alone."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event

from engine import automation
from engine.automation.reads import message_facts
from engine.messaging import Renderer
from engine.payments.models import PaymentMethod, Receivable
from engine.store import Database
from engine.system import SubsystemRecords

NOW = datetime(2027, 3, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def _database(tmp_path: Path, n: int) -> Database:
    """n customers, each with an invoice: the odd ones pay by transfer (a bank method), the
    others by card; every third invoice has its receivable (its RF reference) open already."""
    db = Database(f"sqlite:///{tmp_path}/facts{n}.db")
    db.migrate()
    with db.session() as s:
        for i in range(n):
            cid = f"cus_{i}"
            s.add(PaymentMethod(id=f"pm_{i}", customer_id=cid, provider="bank" if i % 2 else "sandbox",
                                method_type="bank_transfer" if i % 2 else "card", created_at=NOW))
            if i % 3 == 0:
                s.add(Receivable(invoice_id=f"inv_{i}", customer_id=cid, currency="EUR",
                                 amount_due=Decimal("10.00"), amount_paid=Decimal(0), credit_applied=Decimal(0),
                                 payment_reference=f"RF18INV{i:04d}", collection_method="bank_transfer",
                                 status="open", created_at=NOW))
    return db


def _context(i: int) -> dict[str, Any]:
    invoice = {"id": f"inv_{i}", "number": f"2027-{i:04d}", "total": "10.00", "amount_due": "10.00",
               "currency": "EUR", "issued_at": NOW.isoformat(), "customer_id": f"cus_{i}"}
    return {"event": {"type": "invoice.finalized", "customer_id": f"cus_{i}", "properties": {}},
            "customer": {"id": f"cus_{i}", "name": f"Customer {i}", "email": f"c{i}@example.com"},
            "invoice": invoice, "account": {"dunning_state": "active"}}


def _messages(db: Database, n: int, *, batch: bool) -> tuple[list[str], int]:
    """The invoice emails of n customers, their facts the batch's (or each its own), and the
    statements their facts took."""
    records, renderer = SubsystemRecords(), Renderer(ROOT / "templates")
    seller = automation.Seller("Acme AG", "CH9300762011623852957")
    contexts = [_context(i) for i in range(n)]
    statements = 0

    def count(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        nonlocal statements
        statements += not sql.startswith("BEGIN")  # SQLite's transaction start is no read

    texts = []
    with db.session() as s:
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            shared = message_facts(records, s, contexts) if batch else None
            for ctx in contexts:
                facts = shared if shared is not None else message_facts(records, s, [ctx])  # a batch of one
                data = automation.template_data("invoice_issued", ctx, {}, now=NOW, public_url="https://x.test",
                                                seller=seller, facts=facts)
                texts.append(str(renderer.render("invoice_issued", "email", data, "en", ctx["customer"]).text))
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    return texts, statements


def test_a_batch_reads_its_messages_facts_in_two_queries_whatever_its_size(tmp_path: Path) -> None:
    small, large = _database(tmp_path, 3), _database(tmp_path, 12)
    small_texts, small_queries = _messages(small, 3, batch=True)
    large_texts, large_queries = _messages(large, 12, batch=True)
    assert small_queries == large_queries == 2  # the references, the payment methods
    alone_texts, alone_queries = _messages(large, 12, batch=False)
    assert alone_queries == 2 * 12
    assert large_texts == alone_texts  # each message as it is alone
    assert small_texts == alone_texts[:3]
    # what the messages quote: a receivable's reference once open, the bank details to
    # those who pay by transfer only
    assert "RF18INV0003" in large_texts[3] and "CH9300762011623852957" in large_texts[3]
    assert "CH9300762011623852957" not in large_texts[0]
