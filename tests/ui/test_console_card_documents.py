"""The customer card (AppTest) on what the audit found untested: finding a customer by a piece of
their id or by their email; a refunded payment with its amount and date, formatted; and the
invoice downloads holding the invoice itself (its number and total), not just a button. The
card's scenario runs on the engine's stored test clock (Nov 2 2026)."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from engine import payments
from engine.clock import TestClock
from engine.sales.models import Invoice
from engine.simulation import CardModel
from engine.store import Database
from engine.system.lifecycle_cards import PROVIDER, DecliningProvider
from tests.console import scenario
from tests.ui.conftest import page, texts
from tests.ui.test_console_business import frames, signed_in
from tests.ui.test_console_clock import card_url  # noqa: F401 (the fixture card_db needs)
from tests.ui.test_console_pause import card_db  # noqa: F401 (the module's fixture)

pytestmark = pytest.mark.slow


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """What each download button would hand the browser, by its file name (AppTest keeps the
    bytes in a media store that goes with each run)."""
    kept: dict[str, bytes] = {}
    keep = MemoryMediaFileStorage.load_and_get_id

    def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):  # type: ignore[no-untyped-def]
        if filename:
            kept[filename] = path_or_data if isinstance(path_or_data, bytes) else path_or_data.encode()
        return keep(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", load_and_get_id)
    return kept


def test_search_finds_a_customer_by_a_piece_of_the_id_and_by_email(card_db: Database) -> None:  # noqa: F811
    at = page(signed_in("viewer"), "Customers")
    at.text_input(key="cust_search").input("US_AD").run()  # in cus_ada only, and any case
    assert at.selectbox(key="cust_pick").options == ["Ada Lovelace · ada@uni.example"]
    at.text_input(key="cust_search").input("bob@builder.example").run()
    assert at.selectbox(key="cust_pick").options == ["Bob Builder · bob@builder.example"]
    assert "Bob Builder" in [s.value for s in at.subheader]
    at.text_input(key="cust_search").input("nobody@nowhere").run()
    assert "No customer matches." in texts(at, "info")


class RefundingProvider(DecliningProvider):
    """The scenario's card provider, which also takes refunds back."""

    def refund(self, request: payments.RefundRequest) -> payments.RefundOutcome:
        return payments.RefundOutcome(
            payments.PaymentState.SUCCEEDED,
            f"re_{request.idempotency_key}",
            request.provider_ref,
            request.amount,
            request.currency,
            "succeeded",
            request.idempotency_key,
        )


def test_a_refund_shows_on_the_card_with_its_amount_and_date(card_db: Database) -> None:  # noqa: F811
    clock = TestClock(scenario.END)
    service = payments.PaymentService(
        [RefundingProvider(CardModel(failure_rate=0.0), clock)], clock, default_provider=PROVIDER
    )
    with card_db.session() as s:
        invoice = s.scalars(select(Invoice).where(Invoice.number == "INV-2026-000004")).one()
        payments.refund_invoice_payments(s, invoice.id, Decimal("12.35"), reason="billing mistake", service=service)
    at = page(signed_in("viewer"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    refunds = next(d.value for d in at.dataframe if "Reason" in d.value.columns)
    assert refunds.to_dict("records") == [
        {
            "Invoice": "INV-2026-000004",
            "Status": "succeeded",
            "Amount": "$12.35",
            "Reason": "billing mistake",
            "When": "Nov 2, 2026 09:00 UTC",
        }
    ]
    assert "No refunds." not in texts(at, "caption")
    assert "$12.35" in frames(at)


def test_the_invoice_downloads_hold_the_invoice_number_and_total(card_db: Database, downloads) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    at = page(signed_in("viewer"), "Customers")
    at.text_input(key="cust_search").input("builder").run()
    downloads.clear()  # those of the invoice shown first
    # Bob's first invoice, not the one shown first: Pro in advance, 49.00 + 2 seats x 10.00.
    at.selectbox(key="cust_invoice").select("INV-2026-000002").run()
    assert not at.exception, at.exception
    assert sorted(downloads) == ["invoice-INV-2026-000002.html", "invoice-INV-2026-000002.pdf"]
    html = downloads["invoice-INV-2026-000002.html"].decode()
    pdf = downloads["invoice-INV-2026-000002.pdf"]
    assert pdf.startswith(b"%PDF-")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    for document in (html, text):
        assert "INV-2026-000002" in document and "69.00" in document
        assert "INV-2026-000004" not in document and "63.20" not in document
