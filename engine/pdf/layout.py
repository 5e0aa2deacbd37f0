"""Drawing an invoice or a credit note with fpdf2, from plain data: what `engine.pdf` read from
sales and payments. Nothing here prices anything or reads a database: every figure printed is
a string the invoice JSON already holds, formatted for the customer's language and currency.

The font is DejaVu Sans (a subset: Latin, Greek, Cyrillic, punctuation, currency signs; see
fonts/README.md), embedded, so that "€", "Müller" and "Łódź" print and read back as text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from engine.messaging import format_date, format_money

if TYPE_CHECKING:
    from engine.config import Settings

FONTS = Path(__file__).resolve().parent / "fonts"
LANGUAGES = ("en", "de")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "invoice": "Invoice",
        "credit_note": "Credit note",
        "number": "Number",
        "date": "Date",
        "period": "Service period",
        "customer": "Customer",
        "for_invoice": "For invoice",
        "bill_to": "Bill to",
        "tax_id": "VAT ID",
        "iban": "IBAN",
        "description": "Description",
        "quantity": "Quantity",
        "amount": "Amount",
        "tier": "Tier",
        "units": "units",
        "subtotal": "Subtotal",
        "discount": "Discount",
        "tax": "Tax",
        "reverse_charge": "Reverse charge: VAT is due by the recipient (Art. 196 Council Directive 2006/112/EC)",
        "total": "Total",
        "credit_applied": "Credit applied",
        "credited": "Credited (credit notes)",
        "amount_due": "Amount due",
        "paid": "Paid",
        "pay_transfer": "Please transfer {amount} to {name}, IBAN {iban}, quoting the reference {reference}.",
        "pay_transfer_ref": "Quote the reference exactly, so that your payment finds this invoice.",
        "pay_card": "The amount due is charged to your {method}.",
        "pay_none": "Please pay {amount} with the reference {reference}.",
        "paid_in_full": "Paid in full. Thank you.",
        "nothing_due": "Nothing is due.",
        "payment": "Payment",
        "reason": "Reason",
        "credit_total": "Total credited",
        "credit_use": "Credited to the invoice or to your balance for the next invoices.",
        "page": "Page {n} of {total}",
        "status_void": "VOID",
        "status_draft": "DRAFT",
        "status_uncollectible": "WRITTEN OFF",
    },
    "de": {
        "invoice": "Rechnung",
        "credit_note": "Gutschrift",
        "number": "Nummer",
        "date": "Datum",
        "period": "Leistungszeitraum",
        "customer": "Kunde",
        "for_invoice": "Zu Rechnung",
        "bill_to": "Rechnungsempfänger",
        "tax_id": "USt-IdNr.",
        "iban": "IBAN",
        "description": "Beschreibung",
        "quantity": "Menge",
        "amount": "Betrag",
        "tier": "Stufe",
        "units": "Einheiten",
        "subtotal": "Zwischensumme",
        "discount": "Rabatt",
        "tax": "USt.",
        "reverse_charge": "Steuerschuldnerschaft des Leistungsempfängers (Reverse Charge, Art. 196 MwStSystRL)",
        "total": "Gesamt",
        "credit_applied": "Verrechnetes Guthaben",
        "credited": "Gutgeschrieben (Gutschriften)",
        "amount_due": "Offener Betrag",
        "paid": "Bezahlt",
        "pay_transfer": "Bitte überweisen Sie {amount} an {name}, IBAN {iban}, mit der Referenz {reference}.",
        "pay_transfer_ref": "Bitte geben Sie die Referenz genau an, damit Ihre Zahlung dieser Rechnung zugeordnet wird.",
        "pay_card": "Der offene Betrag wird von Ihrer {method} eingezogen.",
        "pay_none": "Bitte zahlen Sie {amount} mit der Referenz {reference}.",
        "paid_in_full": "Vollständig bezahlt. Vielen Dank.",
        "nothing_due": "Es ist nichts offen.",
        "payment": "Zahlung",
        "reason": "Grund",
        "credit_total": "Gutgeschrieben",
        "credit_use": "Mit der Rechnung oder Ihren nächsten Rechnungen verrechnet.",
        "page": "Seite {n} von {total}",
        "status_void": "STORNIERT",
        "status_draft": "ENTWURF",
        "status_uncollectible": "ABGESCHRIEBEN",
    },
}


def language_of(locale: str | None) -> str:
    """`de-CH` -> `de`; a language without labels is English."""
    lang = str(locale or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in LANGUAGES else "en"


@dataclass(frozen=True)
class Seller:
    """Who issues the documents (BILLING_SELLER_NAME, _ADDRESS, _TAX_ID, _IBAN)."""

    name: str = ""
    address: tuple[str, ...] = ()
    tax_id: str = ""
    iban: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Seller:
        raw = settings.seller_address
        lines = tuple(x.strip() for x in raw.replace(";", "\n").splitlines() if x.strip())
        return cls(settings.seller_name, lines, settings.seller_tax_id, settings.seller_iban)


@dataclass(frozen=True)
class Instructions:
    """How the amount due is paid: by transfer (IBAN and RF reference), by the stored method
    (a card's last four digits), or nothing (paid, void)."""

    kind: str  # transfer | method | none
    reference: str = ""
    method: str = ""  # e.g. "card ending 4242"


@dataclass
class DocumentData:
    """Everything printed, as the invoice / credit note JSON and the customer hold it."""

    kind: str  # invoice | credit_note
    document: Mapping[str, Any]
    customer: Mapping[str, Any]
    seller: Seller
    language: str
    instructions: Instructions = field(default_factory=lambda: Instructions("none"))


def _money(value: Any, currency: str, lang: str) -> str:
    return format_money(value, currency, lang)


def _date(value: Any, lang: str) -> str:
    return format_date(value, lang) if value else "-"


def _quantity(value: Any, lang: str) -> str:
    amount = Decimal(str(value))
    whole, _, frac = f"{amount.normalize():f}".partition(".")
    group, point = (".", ",") if lang == "de" else (",", ".")
    sign = "-" if whole.startswith("-") else ""
    digits = f"{int(whole.lstrip('-') or 0):,}".replace(",", group)
    return sign + digits + (point + frac if frac else "")


def _nonzero(value: Any) -> bool:
    try:
        return Decimal(str(value)) != 0
    except ArithmeticError:
        return False


class _Pdf(FPDF):
    def __init__(self, labels: Mapping[str, str], footer_text: str) -> None:
        super().__init__(format="A4", unit="mm")
        self.labels = labels
        self.footer_text = footer_text
        self.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.set_auto_page_break(auto=True, margin=20)
        self.set_margins(18, 16, 18)
        self.alias_nb_pages("{nb}")

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("DejaVu", "", 7.5)
        self.set_text_color(110)
        page = self.labels["page"].format(n=self.page_no(), total="{nb}")
        self.cell(0, 4, f"{self.footer_text}    {page}" if self.footer_text else page, align="C")
        self.set_text_color(0)


def render(data: DocumentData) -> bytes:
    """The PDF of an invoice or a credit note."""
    lang = data.language if data.language in LANGUAGES else "en"
    labels = LABELS[lang]
    seller = data.seller
    footer = " · ".join(x for x in (seller.name, *_seller_ids(seller, labels, " ")) if x)
    pdf = _Pdf(labels, footer)
    doc = data.document
    number = str(doc.get("number") or doc.get("id"))
    title = labels[data.kind]  # the label of an invoice or a credit_note
    pdf.set_title(f"{title} {number}")
    pdf.set_author(seller.name or "billing-engine")
    pdf.set_creator("billing-engine")
    issued = doc.get("issued_at") or doc.get("created_at")
    if issued:
        # The document's own date, not the moment it was drawn: the same invoice, the same bytes.
        pdf.set_creation_date(datetime.fromisoformat(str(issued)))
    pdf.add_page()
    _parties(pdf, data, labels, lang, title, number)
    _BODIES[data.kind](pdf, data, labels, lang)
    return bytes(pdf.output())


def _parties(pdf: _Pdf, data: DocumentData, labels: Mapping[str, str], lang: str, title: str, number: str) -> None:
    """The seller on the left, the document's head on the right, then the buyer."""
    top = pdf.get_y()
    _seller(pdf, data.seller, labels)
    left_end = pdf.get_y()
    pdf.set_xy(120, top)
    _head(pdf, data, labels, lang, title, number)
    pdf.set_y(max(left_end, pdf.get_y()) + 8)
    pdf.set_font("DejaVu", "B", 9)
    pdf.cell(0, 5, labels["bill_to"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9)
    for line in buyer_lines(data.customer, labels):
        pdf.cell(0, 4.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)


def _seller(pdf: _Pdf, seller: Seller, labels: Mapping[str, str]) -> None:
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(95, 6, seller.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9)
    for line in [*seller.address, *_seller_ids(seller, labels, ": ")]:
        pdf.cell(95, 4.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _seller_ids(seller: Seller, labels: Mapping[str, str], sep: str) -> list[str]:
    """The seller's tax id and IBAN, labelled: those it has."""
    return [f"{labels[key]}{sep}{value}" for key, value in (("tax_id", seller.tax_id), ("iban", seller.iban)) if value]


def _head(pdf: _Pdf, data: DocumentData, labels: Mapping[str, str], lang: str, title: str, number: str) -> None:
    """Title, number, dates and customer, and the status when it is one to stamp."""
    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(72, 8, title, align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9)
    for label, value in _facts(data, labels, lang, number):
        pdf.set_x(120)
        pdf.cell(72, 4.8, f"{label}: {value}", align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    status = str(data.document.get("status") or "")
    if f"status_{status}" in labels:
        pdf.set_x(120)
        pdf.set_font("DejaVu", "B", 10)
        pdf.set_text_color(180, 0, 0)
        pdf.cell(72, 6, labels[f"status_{status}"], align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_text_color(0)


def _facts(data: DocumentData, labels: Mapping[str, str], lang: str, number: str) -> list[tuple[str, str]]:
    doc = data.document
    facts = [(labels["number"], number), (labels["date"], _date(doc.get("issued_at") or doc.get("created_at"), lang))]
    period = doc.get("period") or {}
    if data.kind == "invoice" and period.get("start") and period.get("end"):
        facts.append((labels["period"], f"{_date(period['start'], lang)} – {_date(period['end'], lang)}"))
    if data.kind == "credit_note" and doc.get("invoice_number"):
        facts.append((labels["for_invoice"], str(doc["invoice_number"])))
    facts.append((labels["customer"], str(data.customer.get("id") or "")))
    return facts


def buyer_lines(customer: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """Name, the address the customer's attributes hold (`address`: a text or a list of
    lines), country, email and tax id."""
    attributes = customer.get("attributes") or {}
    address = attributes.get("address") if isinstance(attributes, Mapping) else None
    lines = [str(customer.get("name") or customer.get("id") or ""), *_address_lines(address)]
    if customer.get("country"):
        lines.append(str(customer["country"]))
    if customer.get("email"):
        lines.append(str(customer["email"]))
    if customer.get("tax_id"):
        lines.append(f"{labels['tax_id']}: {customer['tax_id']}")
    return lines


def _address_lines(address: Any) -> list[str]:
    """An address given as a text (lines, or parts separated by `;`) or as a list of lines."""
    if isinstance(address, str):
        return [x.strip() for x in address.replace(";", "\n").splitlines() if x.strip()]
    if isinstance(address, Sequence):
        return [str(x) for x in address if str(x).strip()]
    return []


_WIDTHS = (86, 44, 20, 24)  # description, period, quantity, amount (mm): 174 = A4 minus margins


def _table_head(pdf: _Pdf, labels: Mapping[str, str], currency: str) -> None:
    pdf.set_font("DejaVu", "B", 8.5)
    pdf.set_fill_color(238)
    heads = (labels["description"], labels["period"], labels["quantity"], f"{labels['amount']} ({currency})")
    for width, text, align in zip(_WIDTHS, heads, ("L", "L", "R", "R"), strict=True):
        pdf.cell(width, 6, text, align=align, fill=True)
    pdf.ln(6)
    pdf.set_font("DejaVu", "", 8.5)


def _invoice_body(pdf: _Pdf, data: DocumentData, labels: Mapping[str, str], lang: str) -> None:
    doc = data.document
    currency = str(doc["currency"])
    _table_head(pdf, labels, currency)
    for line in doc.get("lines") or []:
        _invoice_line(pdf, line, labels, currency, lang)
    pdf.ln(3)
    due = max(Decimal(str(doc.get("amount_due") or 0)) - Decimal(str(doc.get("amount_paid") or 0)), Decimal(0))
    _totals(pdf, _invoice_totals(doc, labels, currency, lang, due))
    _instructions(pdf, data, labels, lang, due)


def _invoice_line(pdf: _Pdf, line: Mapping[str, Any], labels: Mapping[str, str], currency: str, lang: str) -> None:
    """One line of the table, with its tiers below it where the price has tiers to show."""
    period = line.get("period") or {}
    when = f"{_date(period['start'], lang)} – {_date(period['end'], lang)}" if period else ""
    name = str(line.get("name") or line.get("price_id") or "")
    if line.get("note"):
        name += f" ({line['note']})"
    pdf.cell(_WIDTHS[0], 5.2, name[:70])
    pdf.cell(_WIDTHS[1], 5.2, when)
    pdf.cell(_WIDTHS[2], 5.2, _quantity(line.get("quantity") or 0, lang), align="R")
    pdf.cell(_WIDTHS[3], 5.2, _money(line.get("amount"), currency, lang), align="R")
    pdf.ln(5.2)
    tiers = line.get("tiers") or []
    if not (len(tiers) > 1 or (tiers and line.get("model") in ("graduated", "volume", "package"))):
        return
    pdf.set_text_color(90)
    for tier in tiers:
        pdf.cell(_WIDTHS[0], 4.4, f"    {labels['tier']} {tier.get('tier')}")
        pdf.cell(_WIDTHS[1], 4.4, "")
        pdf.cell(_WIDTHS[2], 4.4, _quantity(tier.get("quantity") or 0, lang), align="R")
        pdf.cell(_WIDTHS[3], 4.4, _money(tier.get("amount"), currency, lang), align="R")
        pdf.ln(4.4)
    pdf.set_text_color(0)


def _invoice_totals(doc: Mapping[str, Any], labels: Mapping[str, str], currency: str, lang: str,
                    due: Decimal) -> list[tuple[str, str, bool]]:
    """(label, figure, bold) from the subtotal through discounts and tax to what is due."""
    rows: list[tuple[str, str, bool]] = [(labels["subtotal"], _money(doc["subtotal"], currency, lang), False)]
    for d in doc.get("discounts") or []:
        rows.append((f"{labels['discount']} {d.get('reason') or d.get('source') or ''}".strip(),
                     _money(-Decimal(str(d.get("amount") or 0)), currency, lang), False))
    rows.append(_tax_row(doc, labels, currency, lang))
    rows.append((labels["total"], _money(doc["total"], currency, lang), True))
    for key, label in (("credit_applied", "credit_applied"), ("amount_credited", "credited"), ("amount_paid", "paid")):
        if _nonzero(doc.get(key)):
            rows.append((labels[label], _money(-Decimal(str(doc[key])), currency, lang), False))
    rows.append((labels["amount_due"], _money(due, currency, lang), True))
    return rows


def _tax_row(doc: Mapping[str, Any], labels: Mapping[str, str], currency: str, lang: str) -> tuple[str, str, bool]:
    tax = _money(doc.get("tax") or 0, currency, lang)
    if doc.get("reverse_charge"):
        return labels["reverse_charge"], tax, False
    rate = ""
    if doc.get("tax_country") and doc.get("tax_rate") is not None:
        rate = f" {doc['tax_country']} {_quantity(doc['tax_rate'], lang)} %"
    return labels["tax"] + rate, tax, False


def _totals(pdf: _Pdf, rows: Sequence[tuple[str, str, bool]]) -> None:
    for label, value, bold in rows:
        pdf.set_font("DejaVu", "B" if bold else "", 9 if bold else 8.5)
        if pdf.get_string_width(label) > 120:
            # A long note (reverse charge) wraps on the left of its figure.
            y = pdf.get_y()
            pdf.multi_cell(140, 4.6, label, align="R", new_x=XPos.RIGHT, new_y=YPos.TOP)
            pdf.set_xy(158, y)
            pdf.cell(34, 4.6, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(5)
            continue
        pdf.cell(140, 5.6, label, align="R")
        pdf.cell(34, 5.6, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _instructions(pdf: _Pdf, data: DocumentData, labels: Mapping[str, str], lang: str, due: Decimal) -> None:
    status = str(data.document.get("status") or "")
    pdf.ln(6)
    pdf.set_font("DejaVu", "B", 9)
    pdf.cell(0, 5, labels["payment"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9)
    pdf.multi_cell(0, 4.8, _instruction_text(data, labels, lang, due, status), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _instruction_text(data: DocumentData, labels: Mapping[str, str], lang: str, due: Decimal, status: str) -> str:
    """Paid, nothing due, or how to pay what is due: by transfer, by the saved method, or as agreed."""
    doc, how, seller = data.document, data.instructions, data.seller
    if status == "paid":
        return labels["paid_in_full"]
    if due <= 0 or status in ("void", "draft"):
        return labels["nothing_due"]
    amount = _money(due, str(doc["currency"]), lang)
    if how.kind == "transfer" and seller.iban:
        return labels["pay_transfer"].format(amount=amount, name=seller.name, iban=seller.iban,
                                             reference=how.reference) + "\n" + labels["pay_transfer_ref"]
    if how.kind == "method" and how.method:
        return labels["pay_card"].format(method=how.method)
    return labels["pay_none"].format(amount=amount, reference=how.reference or str(doc.get("number")))


def _credit_note_body(pdf: _Pdf, data: DocumentData, labels: Mapping[str, str], lang: str) -> None:
    doc = data.document
    currency = str(doc["currency"])
    _table_head(pdf, labels, currency)
    for line in doc.get("lines") or []:
        pdf.cell(_WIDTHS[0], 5.2, str(line.get("name") or line.get("price_id") or "")[:70])
        pdf.cell(_WIDTHS[1], 5.2, "")
        pdf.cell(_WIDTHS[2], 5.2, _quantity(line.get("quantity") or 1, lang), align="R")
        amount = Decimal(str(line.get("amount") or 0))
        pdf.cell(_WIDTHS[3], 5.2, _money(abs(amount), currency, lang), align="R")
        pdf.ln(5.2)
    pdf.ln(3)
    _totals(pdf, [
        (labels["subtotal"], _money(doc["subtotal"], currency, lang), False),
        (labels["tax"], _money(doc.get("tax") or 0, currency, lang), False),
        (labels["credit_total"], _money(doc["total"], currency, lang), True),
    ])
    pdf.ln(4)
    pdf.set_font("DejaVu", "", 9)
    if doc.get("reason"):
        pdf.cell(0, 5, f"{labels['reason']}: {doc['reason']}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.multi_cell(0, 4.8, labels["credit_use"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)


# The table and totals of each kind of document (DocumentData.kind).
_BODIES: dict[str, Callable[[_Pdf, DocumentData, Mapping[str, str], str], None]] = {
    "invoice": _invoice_body,
    "credit_note": _credit_note_body,
}
