"""A step's document: its pieces priced as one document with the customer's tax, issued (an
invoice, or a credit note when it owes the customer) and each piece recorded in the period
ledger. Moved from engine.sales.cycle."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from engine.catalog.model import Catalog
from engine.periods import Period
from engine.pricing import tax_for
from engine.pricing.document import Document, price_document
from engine.sales.credit_notes import CreditSettlement
from engine.sales.customers import tax_subject
from engine.sales.invoicing import Arrears, issue_bill
from engine.sales.ledger import record
from engine.sales.models import CreditNote, Customer, Invoice, Subscription
from engine.sales.pieces import Priced


def price_pieces(
    priced: Sequence[Priced], customer: Customer, *, plan_id: str, period: Period, catalog: Catalog | None = None
) -> Document:
    """The pieces priced as one document, with the customer's tax."""
    cat = catalog or priced[0].piece.catalog
    return price_document(
        [p.piece for p in priced], tax_for(cat, tax_subject(customer)), catalog=cat, plan=plan_id, period=period
    )


def issue_document(
    session: Session,
    sub: Subscription,
    customer: Customer,
    priced: Sequence[Priced],
    *,
    reason: str,
    billing_key: str,
    now: datetime,
    period: Period,
    arrears: Arrears | None = None,
    number: int | None = None,
    catalog: Catalog | None = None,
    doc: Document | None = None,
    settlement: CreditSettlement | None = None,
) -> tuple[Invoice | CreditNote, Document]:
    """Price the pieces as one document (unless `doc` is that already), issue it (an invoice,
    or a credit note when it owes the customer, its money going where `settlement` says) and
    record each piece in the period ledger."""
    cat = catalog or priced[0].piece.catalog
    doc = doc or price_pieces(priced, customer, plan_id=sub.plan_id, period=period, catalog=cat)
    issued = issue_bill(
        session,
        customer=customer,
        subscription=sub,
        bill=doc,
        rounder=cat.rounder,
        reason=reason,
        billing_key=billing_key,
        now=now,
        version_id=sub.catalog_version_id,
        period=period,
        arrears=arrears,
        payment_method=sub.payment_method,
        number=number,
        settlement=settlement,
    )
    record(
        session,
        subscription_id=sub.id,
        document_id=issued.id,
        doc=doc,
        reasons=[p.reason for p in priced],
        cycles=[p.cycle for p in priced],
        version_ids=[p.version_id for p in priced],
        now=now,
    )
    return issued, doc
