"""A customer's wallet and spend budget on the console: balances per unit, grants with what is
left, the ledger page by page, and the budget, as the HTTP routes read them
(engine/api/routes/wallets.py and budgets.py). The credits come through `WalletReaders`
(engine/system/console_readers.py); an operator's grant and budget changes, audited, are
engine/system/operations/wallet_changes.py (the ui/ page calls them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import sales

LEDGER_PAGE = 20


@dataclass(frozen=True)
class WalletReaders:
    """What the page reads of the credits subsystem, bound in engine/system/console_readers.py
    (this module imports sales alone of the subsystems)."""

    wallet: Callable[[Session, str, datetime], dict[str, Any]]  # as GET /v1/customers/{id}/wallet
    ledger_page: Callable[..., dict[str, Any]]  # (session, customer id, after=, limit=) -> a page


@dataclass(frozen=True)
class WalletView:
    balances: list[dict[str, Any]]  # unit, balance, available, pending (decimal strings)
    grants: list[dict[str, Any]]  # as GET /v1/customers/{id}/wallet gives them
    budget: dict[str, Any] | None  # as GET /v1/customers/{id}/budget, None: no budget
    units: list[str]  # what an operator may grant in: the currency, then a token catalog's unit


def wallet_view(session: Session, read: WalletReaders, customer_id: str, now: datetime) -> WalletView:
    sales.get_customer(session, customer_id)  # NotFound naming customer_id
    out = read.wallet(session, customer_id, now)
    return WalletView(out["balances"], out["grants"], sales.budget_status(session, customer_id),
                      sales.grant_units(session, customer_id))


def ledger(session: Session, read: WalletReaders, customer_id: str, after: int = 0,
           limit: int = LEDGER_PAGE) -> dict[str, Any]:
    """One page of entries, oldest first; `next_after` pages on (None: the last page)."""
    return read.ledger_page(session, customer_id, after=after, limit=limit)
