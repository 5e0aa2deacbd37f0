"""What the customer page reads and writes of the subsystems other than payments, bound in
engine.system (engine/system/portal_readers.py): the page's modules import payments alone
(tests/test_quality.py checks the rule)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class OptOuts:
    """What a customer opted out of (messaging's preferences), as the page shows them."""

    categories: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PortalReaders:
    # (session, customer id) -> the customer; raises an engine.errors.NotFound.
    customer: Callable[[Session, str], dict[str, Any]]
    # (session, invoice id) -> the invoice; raises an engine.errors.NotFound.
    invoice: Callable[[Session, str], dict[str, Any]]
    # (session, customer id, page, per_page) -> {items, total}: the customer's invoices.
    invoices: Callable[[Session, str, int, int], dict[str, Any]]
    # (session, customer id) -> the customer's credit notes, oldest first.
    credit_notes: Callable[[Session, str], list[dict[str, Any]]]
    # (session, customer id) -> the notification categories and channels opted out of.
    opt_outs: Callable[[Session, str], OptOuts]
    # (session, customer id, now, categories, channels): store the opt-outs (the rest stays).
    save_opt_outs: Callable[[Session, str, datetime, Sequence[str], Sequence[str]], None]
    # (amount, currency, language) -> the amount as the customer's emails write it.
    money: Callable[[Any, str, str], str]
    # (date or datetime or ISO text, language) -> the date as the customer's emails write it.
    date: Callable[[Any, str], str]
