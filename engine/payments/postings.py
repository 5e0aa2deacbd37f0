"""A journal posting of a signed amount: the side follows the sign."""

from __future__ import annotations

from decimal import Decimal

from engine.payments.journal import Posting


def debit_posting(account: str, amount: Decimal) -> Posting:
    """`amount` debited to `account`; a negative amount is credited (zero is dropped by
    post_entry either way)."""
    return Posting(account, debit=amount) if amount >= 0 else Posting(account, credit=-amount)
