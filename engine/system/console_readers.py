"""What the console's pages read of several subsystems, bound here: the modules of
engine.console receive these typed readers and import one subsystem each at most (the ui/
pages pass them in; tests/test_quality.py checks the rule)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from engine import credits, dunning, messaging, payments
from engine.console.customer_card import CardReaders
from engine.console.overview import OverviewReaders
from engine.console.wallet import WalletReaders
from engine.messaging.sent import notification_content
from engine.payments import reporting as payments_reporting
from engine.sales import reporting as sales_reporting


def overview_readers() -> OverviewReaders:
    """The overview's facts: invoices from sales, payments, refunds and what is owed from
    payments, dunning states from dunning."""
    return OverviewReaders(
        invoices=sales_reporting.invoice_facts,
        payments=payments_reporting.payment_facts,
        refunds=payments_reporting.refund_facts,
        receivables=payments_reporting.open_receivable_facts,
        invoice_catalogs=sales_reporting.invoice_catalogs,
        invoice_currencies=sales_reporting.invoice_currencies,
        dunning_states=dunning.recorded_states,
    )


def card_readers() -> CardReaders:
    """A customer card's payments and refunds (payments), dunning state (dunning) and messages
    (messaging)."""
    return CardReaders(
        dunning_state=dunning.get_state,
        notifications=_customer_notifications,
        notification_content=notification_content,
        payment_summary=payments.invoice_payment_summary,
        refunds=payments.invoice_refunds,
    )


def wallet_readers() -> WalletReaders:
    """A customer's wallet and its ledger pages (credits)."""
    return WalletReaders(wallet=credits.wallet, ledger_page=credits.ledger_page)


def _customer_notifications(session: Session, customer_id: str, limit: int) -> list[dict[str, object]]:
    return messaging.list_notifications(session, customer_id=customer_id, limit=limit)
