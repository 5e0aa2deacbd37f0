"""What the customer page (engine.portal) reads and writes of sales and messaging, bound
here: engine/portal/routes.py imports payments alone (engine.portal.readers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from engine import messaging, sales
from engine.portal.readers import OptOuts, PortalReaders


def _opt_outs(session: Session, customer_id: str) -> OptOuts:
    prefs = messaging.get_preferences(session, customer_id)
    return OptOuts(prefs.opted_out_categories, prefs.opted_out_channels)


def _save_opt_outs(session: Session, customer_id: str, now: datetime,
                   categories: Sequence[str], channels: Sequence[str]) -> None:
    messaging.set_preferences(session, customer_id, now=now, opted_out_categories=categories,
                              opted_out_channels=channels)


def portal_readers() -> PortalReaders:
    return PortalReaders(
        customer=sales.get_customer, invoice=sales.get_invoice, invoices=sales.list_invoices,
        credit_notes=sales.list_credit_notes, opt_outs=_opt_outs, save_opt_outs=_save_opt_outs,
        money=messaging.format_money, date=messaging.format_date,
    )
