"""PDF invoices and credit notes: the text read back out of the PDF (pypdf) carries the figures
of the invoice JSON (GET /v1/invoices/{id}), in the customer's language and currency format,
and the invoice email carries the PDF."""

from __future__ import annotations

from decimal import Decimal

from tests.portal.conftest import SELLER, Engine, pdf_text, portal_link

GOOD_CARD = "4242424242424242"


def usd(amount: str) -> str:
    """How an English reader sees a USD amount: $1,234.50, -$13.80."""
    value = Decimal(amount)
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def eur_de(amount: str) -> str:
    """How a German reader sees a EUR amount: 1.234,50 €."""
    value = Decimal(amount)
    text = f"{abs(value):,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
    return f"{'-' if value < 0 else ''}{text} €"


def test_english_invoice_with_tiers_discount_credit_and_reverse_charge(engine: Engine) -> None:
    # A B2B customer in the UK with a VAT id (reverse charge), three seats, a 20 % coupon,
    # paying by card; 15,000 API calls in the first month reach the second tier.
    engine.customer("cus_b2b", name="Brit Ltd", country="GB", tax_id="GB123456789", card=GOOD_CARD,
                    quantity=3, coupon="WELCOME20", address="1 High Street; London EC1A 1BB")
    first = engine.invoices("cus_b2b")[0]
    assert first["status"] == "paid"
    # Goodwill on the paid first invoice: credited to the customer's balance, taken off the next.
    r = engine.admin.post(f"/v1/invoices/{first['id']}/credit_notes", json={"amount": "15.00", "reason": "goodwill"})
    assert r.status_code == 201, r.text
    events = [{"id": f"call_{i}", "type": "api.request", "customer_id": "cus_b2b",
               "time": "2026-03-10T10:00:00Z", "properties": {}} for i in range(15_000)]
    for start in range(0, len(events), 5000):
        r = engine.product.post("/v1/events", json=events[start:start + 5000])
        assert r.status_code == 202, r.text
    engine.advance("2026-04-01T01:00:00Z")

    invoice = engine.invoices("cus_b2b")[-1]
    calls = next(line for line in invoice["lines"] if line["price_id"] == "calls")
    assert [t["quantity"] for t in calls["tiers"]] == ["10000", "5000"]  # the scenario holds
    assert invoice["reverse_charge"] and Decimal(invoice["credit_applied"]) == Decimal("15.00")
    assert invoice["discounts"] and Decimal(invoice["discount"]) > 0

    r = engine.admin.get(f"/v1/invoices/{invoice['id']}.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = pdf_text(r.content)
    # The seller, from the configuration, and the buyer.
    for expected in (SELLER["seller_name"], "Hauptstraße 1", "10115 Berlin", "VAT ID: DE123456789",
                     "IBAN: DE89370400440532013000", "Brit Ltd", "1 High Street", "London EC1A 1BB",
                     "VAT ID: GB123456789", f"Invoice\nNumber: {invoice['number']}"):
        assert expected in text, expected
    # Every line with its amount, the tiers of the graduated one with theirs.
    for line in invoice["lines"]:
        assert f"{line['name']}" in text and usd(line["amount"]) in text, line
    for tier in calls["tiers"]:
        assert f"Tier {tier['tier']} {int(tier['quantity']):,} {usd(tier['amount'])}" in text, tier
    # The totals: subtotal, the coupon, reverse charge instead of tax, total, credit, amount due.
    discount = invoice["discounts"][0]
    assert f"Subtotal {usd(invoice['subtotal'])}" in text
    assert f"Discount {discount['reason']} {usd('-' + discount['amount'])}" in text
    assert "Reverse charge: VAT is due by the recipient" in text and f"{usd(invoice['tax'])}" in text
    assert f"Total {usd(invoice['total'])}" in text
    assert f"Credit applied {usd('-' + invoice['credit_applied'])}" in text
    # Paid by card at once: nothing is due and the PDF says so.
    assert invoice["status"] == "paid"
    assert "Amount due $0.00" in text and "Paid in full" in text

    # The credit note has its own PDF.
    note = engine.admin.get(f"/v1/invoices/{first['id']}").json()["credit_notes"][0]
    r = engine.admin.get(f"/v1/credit_notes/{note['id']}.pdf")
    assert r.status_code == 200
    text = pdf_text(r.content)
    assert f"Credit note\nNumber: {note['number']}" in text
    assert f"For invoice: {first['number']}" in text and "goodwill" in text
    assert f"Total credited {usd(note['total'])}" in text


def test_german_invoice_with_tax_and_the_bank_transfer_reference(engine: Engine) -> None:
    # A German consumer buying the photo pack (EUR, 19 % VAT), paying by bank transfer.
    engine.customer("cus_de", name="Jürgen Müller", country="DE", locale="de", plan="photo-pack")
    invoice = engine.invoices("cus_de")[0]
    assert invoice["status"] == "finalized" and invoice["currency"] == "EUR"
    reference = invoice["collection"]["payment_reference"]
    assert reference.startswith("RF")

    r = engine.admin.get(f"/v1/invoices/{invoice['id']}.pdf")
    assert r.status_code == 200
    assert r.headers["content-disposition"].startswith('inline; filename="rechnung-')
    text = pdf_text(r.content)
    assert f"Rechnung\nNummer: {invoice['number']}" in text
    assert "Jürgen Müller" in text and "Rechnungsempfänger" in text
    line = invoice["lines"][0]
    assert f"{line['name']}" in text and eur_de(line["amount"]) in text
    assert f"Zwischensumme {eur_de(invoice['subtotal'])}" in text
    assert f"USt. DE 19 % {eur_de(invoice['tax'])}" in text
    assert f"Gesamt {eur_de(invoice['total'])}" in text
    assert f"Offener Betrag {eur_de(invoice['amount_due'])}" in text
    # How to pay: the seller's IBAN and the invoice's RF reference, as the bank statement matches it.
    flat = " ".join(text.split())
    assert f"Bitte überweisen Sie {eur_de(invoice['amount_due'])} an Example Billing GmbH, " \
           f"IBAN DE89370400440532013000, mit der Referenz {reference}." in flat

    # The same invoice in English on request.
    english = pdf_text(engine.admin.get(f"/v1/invoices/{invoice['id']}.pdf?language=en").content)
    assert f"Invoice\nNumber: {invoice['number']}" in english and "€39.00" in english.replace(" ", "")


def test_the_invoice_email_carries_the_pdf_and_the_customer_page_link(engine: Engine) -> None:
    engine.customer("cus_mail", name="Ada Lovelace", country="CH", plan="pro", quantity=2)
    invoice = engine.invoices("cus_mail")[0]
    mails = [m for m in engine.inbox.to("cus_mail@example.com") if invoice["number"] in m.subject]
    assert mails, [m.subject for m in engine.inbox.mails]
    mail = mails[0]
    assert len(mail.attachments) == 1
    filename, content_type, data = mail.attachments[0]
    assert (filename, content_type) == (f"invoice-{invoice['number']}.pdf", "application/pdf")
    text = pdf_text(data)
    assert invoice["number"] in text and f"Total {usd(invoice['total'])}" in text
    # The email links to the customer's page, which opens without any key.
    link = portal_link(mail.text)
    assert link in mail.html
    import httpx

    page = httpx.get(link)
    assert page.status_code == 200 and invoice["number"] in page.text and "Ada Lovelace" in page.text


def test_pdfs_need_an_admin_key_and_name_what_is_missing(engine: Engine) -> None:
    import httpx

    engine.customer("cus_k", name="K", country="US", plan="pro")
    invoice = engine.invoices("cus_k")[0]
    assert httpx.get(f"{engine.url}/v1/invoices/{invoice['id']}.pdf").status_code == 401
    assert engine.product.get(f"/v1/invoices/{invoice['id']}.pdf").status_code == 403
    missing = engine.admin.get("/v1/invoices/in_nope.pdf")
    assert missing.status_code == 404 and missing.json()["field"] == "invoice_id"
    assert engine.admin.get("/v1/credit_notes/cn_nope.pdf").json()["field"] == "credit_note_id"
    assert engine.admin.get(f"/v1/invoices/{invoice['id']}.pdf?language=fr").status_code == 422
    # The JSON of the invoice is where it was.
    assert engine.admin.get(f"/v1/invoices/{invoice['id']}").json()["number"] == invoice["number"]
